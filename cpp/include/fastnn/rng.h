// fastnn/rng.h — Philox4x32-10, a counter-based generator (Salmon et al., SC'11).
//
// A random number is a pure function of (key, counter): nothing is carried from one call to the
// next, so any element can be computed by any thread, in any order, and replayed exactly. fastnn
// keys it with a 64-bit seed and counts with (element block, 64-bit stream); a caller chooses the
// stream (the runtime derives it from the step and the layer).
#pragma once

#include <cstdint>

#include "fastnn/common.h"

namespace fastnn {

struct Philox4x32 {
  static constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  static constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

  // Ten rounds on counter c with key k; the four outputs replace c.
  static FASTNN_INLINE void block(std::uint32_t c[4], std::uint32_t k0, std::uint32_t k1) {
    for (int r = 0; r < 10; ++r) {
      const std::uint64_t p0 = std::uint64_t(kM0) * c[0];
      const std::uint64_t p1 = std::uint64_t(kM1) * c[2];
      const std::uint32_t n0 = std::uint32_t(p1 >> 32) ^ c[1] ^ k0;
      const std::uint32_t n2 = std::uint32_t(p0 >> 32) ^ c[3] ^ k1;
      c[0] = n0;
      c[1] = std::uint32_t(p1);
      c[2] = n2;
      c[3] = std::uint32_t(p0);
      k0 += kW0;
      k1 += kW1;
    }
  }

  // The four 32-bit outputs for block index `blk` of stream `stream` under `seed`.
  static FASTNN_INLINE void generate(std::uint32_t out[4], std::uint64_t seed, std::uint64_t stream,
                                     std::uint64_t blk) {
    out[0] = std::uint32_t(blk);
    out[1] = std::uint32_t(blk >> 32);
    out[2] = std::uint32_t(stream);
    out[3] = std::uint32_t(stream >> 32);
    block(out, std::uint32_t(seed), std::uint32_t(seed >> 32));
  }
};

// out[i] = 32 random bits for element i (i in [first, first + n)) of (seed, stream).
void philox_uint32(std::uint32_t* out, std::uint64_t seed, std::uint64_t stream, index_t first,
                   index_t n);

// Keep decisions for the 64 elements 64 g .. 64 g + 63 (Philox blocks 16 g .. 16 g + 15): bit e of
// the result is set when element 64 g + e's 32 random bits are below `thr` (thr <= 2^32). The
// same bits as philox_uint32, computed 16 blocks at a time with AVX-512 or AVX2 when the CPU has
// them (chosen once at run time), else portably.
std::uint64_t philox_keep_bits64(std::uint64_t seed, std::uint64_t stream, std::uint64_t g,
                                 std::uint64_t thr);

}  // namespace fastnn
