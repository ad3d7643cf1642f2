// Run-time choice of the SIMD clone (see isa.h).
#include "fastnn/isa.h"

#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>

namespace fastnn {

namespace detail {
std::atomic<int> g_isa{-1};
}  // namespace detail

namespace {

std::string g_env_error;  // set once, under the resolve once_flag
std::once_flag g_resolve_once;
char g_supported[64];

#if FASTNN_X86_CLONES
bool cpu_has(Isa isa) noexcept {
  if (isa == Isa::baseline) return true;
  __builtin_cpu_init();
  // __builtin_cpu_supports checks the OS too (XGETBV: AVX / AVX-512 state enabled).
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("avx") && __builtin_cpu_supports("bmi") &&
                  __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c") &&
                  __builtin_cpu_supports("movbe") && __builtin_cpu_supports("lzcnt");
  if (isa == Isa::avx2) return v3;
  if (isa == Isa::avx512)
    return v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
  return false;
}
#endif

bool parse(const std::string& s, Isa* out) {
  if (s == "avx512") *out = Isa::avx512;
  else if (s == "avx2") *out = Isa::avx2;
  else if (s == "baseline" || s == "sse2" || s == "neon") *out = Isa::baseline;
  else if (s == "auto" || s.empty()) *out = best_isa();
  else return false;
  return true;
}

std::string refusal(const std::string& what, const std::string& name) {
  return what + " '" + name + "': this CPU (and build) runs " + simd_supported() +
         " (choose one of those, or 'auto' for the best)";
}

}  // namespace

namespace detail {
Isa resolve_isa() noexcept {
  std::call_once(g_resolve_once, [] {
    Isa isa = best_isa();
    const char* env = std::getenv("FASTNN_SIMD");
    if (env) {
      Isa want;
      if (!parse(env, &want))
        g_env_error = refusal("FASTNN_SIMD names an unknown SIMD level", env);
      else if (!isa_supported(want))
        g_env_error = refusal("FASTNN_SIMD asks for a SIMD level this CPU cannot run", env);
      else
        isa = want;
    }
    int expected = -1;
    g_isa.compare_exchange_strong(expected, static_cast<int>(isa));
  });
  return static_cast<Isa>(g_isa.load());
}
}  // namespace detail

const char* isa_name(Isa isa) noexcept {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    case Isa::baseline:
#if defined(__aarch64__)
      return "neon";
#else
      return "baseline";
#endif
  }
  return "?";
}

bool isa_supported(Isa isa) noexcept {
#if FASTNN_X86_CLONES
  return cpu_has(isa);
#else
  return isa == Isa::baseline;
#endif
}

Isa best_isa() noexcept {
  for (Isa isa : {Isa::avx512, Isa::avx2})
    if (isa_supported(isa)) return isa;
  return Isa::baseline;
}

const char* simd_supported() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::string s;
    for (Isa isa : {Isa::avx512, Isa::avx2, Isa::baseline})
      if (isa_supported(isa)) s += (s.empty() ? "" : ",") + std::string(isa_name(isa));
    s.copy(g_supported, sizeof g_supported - 1);
  });
  return g_supported;
}

void set_simd(const char* name) {
  detail::resolve_isa();
  const std::string s = name ? name : "";
  Isa want;
  if (!parse(s, &want)) throw std::invalid_argument(refusal("unknown SIMD level", s));
  if (!isa_supported(want)) throw std::invalid_argument(refusal("this CPU cannot run SIMD level", s));
  detail::g_isa.store(static_cast<int>(want));
}

void check_simd() {
  detail::resolve_isa();
  if (!g_env_error.empty()) throw std::invalid_argument(g_env_error);
}

const char* simd_level() {
  check_simd();
  return isa_name(active_isa());
}

namespace {
// Each pass's probe returns the level its namespace was compiled for.
namespace isa_avx512 { [[maybe_unused]] constexpr Isa kPass = Isa::avx512; }
namespace isa_avx2 { [[maybe_unused]] constexpr Isa kPass = Isa::avx2; }
namespace isa_baseline { [[maybe_unused]] constexpr Isa kPass = Isa::baseline; }
FASTNN_ISA_PASSES(FASTNN_LEAF Isa probe_leaf() { return kPass; })
}  // namespace

Isa simd_probe() noexcept { return FASTNN_SIMD_CALL(probe_leaf); }

}  // namespace fastnn
