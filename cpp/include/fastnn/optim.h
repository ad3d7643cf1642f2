// fastnn/optim.h — fused optimizer updates over one flat buffer of n parameters.
//
// One entry point, optimizer_step(kind, ...), serves the functional API (one tensor at a time)
// and the network runtime (the whole flat parameter buffer at once): each step reads the gradient
// once and updates the parameters w and the optimizer state in place, in one SIMD loop.
//
// Penalties coupled to the gradient (the runtime's L2/L1 regularisation, PyTorch-style
// weight_decay): g_eff = g + l2 * w + l1 * sign(w). AdamW's decay is decoupled instead:
// w *= 1 - lr * weight_decay before the Adam update.
//
//   SGD:       w -= lr * g
//   Momentum:  v = mu * v - lr * g;  w += v                                   (CS231n form)
//   Nesterov:  v_prev = v;  v = mu * v - lr * g;  w += -mu * v_prev + (1 + mu) * v   (CS231n)
//   Adagrad:   c += g^2;  w -= lr * g / (sqrt(c) + eps)
//   RMSProp:   c = decay * c + (1 - decay) * g^2;  w -= lr * g / (sqrt(c) + eps)
//   Adam:      m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  t is the 1-based step count;
//              w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//   AdamW:     w *= 1 - lr * weight_decay, then the Adam update
//   Adadelta:  a = rho a + (1 - rho) g^2;  d = sqrt(u + eps) / sqrt(a + eps) * g;
//              u = rho u + (1 - rho) d^2;  w -= lr * d                        (Zeiler; lr = 1)
//   Rprop:     per-weight step s (state 1, starts at lr) and previous gradient p (state 0):
//              s *= eta_plus if g p > 0, eta_minus if g p < 0 (and then g = 0), else 1; s is
//              clipped to [step_min, step_max];  w -= sign(g) * s;  p = g   (full-batch; as PyTorch)
//   Gains:     per-weight gain k (state 0, starts at 1), previous gradient p (state 1), velocity
//              v (state 2): g p > 0: k += gain_add, else k *= gain_mul; k clipped to
//              [gain_min, gain_max];  v = mu * v - lr * k * g;  w += v;  p = g
//              (Jacobs' adaptive learning rates as in Hinton's lecture 6)
#pragma once

#include <cstdint>

#include "fastnn/common.h"

namespace fastnn {

enum class OptimKind : int {
  SGD = 0,
  Momentum,
  Nesterov,
  Adagrad,
  RMSProp,
  Adam,
  AdamW,
  Adadelta,
  Rprop,
  Gains,
};

// Number of state buffers (each n values, zero-initialised unless noted above) a kind keeps.
int optimizer_state_count(OptimKind kind);

// Everything a step needs besides the arrays. Unused fields are ignored by a given kind.
struct StepHyper {
  double lr = 0.01;
  double momentum = 0.9;                    // Momentum, Nesterov, Gains
  double beta1 = 0.9, beta2 = 0.999;        // Adam, AdamW
  double eps = 1e-8;                        // Adagrad, RMSProp, Adam(W), Adadelta
  double decay = 0.99;                      // RMSProp
  double rho = 0.9;                         // Adadelta
  double weight_decay = 0.0;                // AdamW (decoupled)
  double l2 = 0.0, l1 = 0.0;                // coupled penalties (every kind)
  double eta_plus = 1.2, eta_minus = 0.5;   // Rprop
  double step_min = 1e-6, step_max = 50.0;  // Rprop
  double gain_add = 0.05, gain_mul = 0.95;  // Gains
  double gain_min = 0.1, gain_max = 10.0;   // Gains
  std::int64_t t = 1;                       // Adam(W): 1-based step count after this update
};

// Apply one step of `kind` to w (n) with gradient g; state[0 .. optimizer_state_count(kind) - 1]
// are the state buffers. Returns 0 and does nothing for n == 0.
template <class T>
void optimizer_step(OptimKind kind, T* w, T* const* state, const T* g, index_t n,
                    const StepHyper& h);

namespace ref {
template <class T>
void optimizer_step(OptimKind kind, T* w, T* const* state, const T* g, index_t n,
                    const StepHyper& h);
}  // namespace ref

}  // namespace fastnn
