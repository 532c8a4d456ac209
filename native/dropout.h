// Dropout whose mask comes from a counter-based hash instead of libtorch's per-element
// Bernoulli sampling: on CPU that sampling cost about as much as all four of SuperLight's
// dropout layers' arithmetic together, ten times over. One pass writes the mask and the
// output; the mask is reused for the backward pass, exactly like nn.Dropout.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>

namespace torchlet {

class FastDropoutImpl : public torch::nn::Module {
 public:
  explicit FastDropoutImpl(double p) : p_(p) {}
  at::Tensor forward(at::Tensor x);

 private:
  double p_;
};
TORCH_MODULE(FastDropout);

// The masked product for a given seed; exposed for tests through the module only.
at::Tensor HashDropout(const at::Tensor& x, double p, uint64_t seed);

// Dropout in training: the hash masks on CPU float tensors, libtorch's dropout elsewhere.
at::Tensor TrainingDropout(const at::Tensor& x, double p);

// A seed for one dropout call, drawn from libtorch's default generator (which the
// trainer seeds per epoch, so runs stay reproducible).
uint64_t NextDropoutSeed();

// One dropout draw, shared by HashDropout and the fused batch-norm kernel so both keep
// the same masks for the same (seed, element index).
struct DropMask {
  DropMask(double p, uint64_t seed)
      : seed(static_cast<uint32_t>(seed ^ (seed >> 32))),
        threshold(static_cast<uint32_t>(std::min(p * 4294967296.0, 4294967295.0))),
        scale(static_cast<float>(1.0 / (1.0 - p))) {}

  // A 32-bit integer hash of the element's index (lowbias32, by Chris Wellons): fast,
  // vectorisable with AVX2, and uniform enough for Bernoulli masks.
  // always_inline: the AVX2 copies of the kernels that call it must get their own copy.
  __attribute__((always_inline)) inline float operator()(int64_t index) const {
    uint32_t h = static_cast<uint32_t>(index) * 0x9E3779B1u + seed;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return h >= threshold ? scale : 0.0f;
  }

  uint32_t seed, threshold;
  float scale;
};

}  // namespace torchlet
