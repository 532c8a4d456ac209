#include "dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <mutex>

namespace torchlet {

namespace {

// A 32-bit integer hash (lowbias32, by Chris Wellons): fast, vectorisable with AVX2,
// and uniform enough for Bernoulli masks.
__attribute__((target_clones("avx2", "default"))) void FillMasked(const float* x, float* mask, float* out, int64_t begin, int64_t end,
                                                                   uint32_t seed, uint32_t threshold, float scale) {
  for (int64_t i = begin; i < end; ++i) {
    uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B1u + seed;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    const float m = h >= threshold ? scale : 0.0f;
    mask[i] = m;
    out[i] = x[i] * m;
  }
}

struct HashDropoutFn : public torch::autograd::Function<HashDropoutFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input, double p, int64_t seed) {
    at::Tensor x = input.contiguous();
    at::Tensor mask = at::empty_like(x);
    at::Tensor out = at::empty_like(x);
    const uint32_t threshold = static_cast<uint32_t>(std::min(p * 4294967296.0, 4294967295.0));
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    const float* xp = x.data_ptr<float>();
    float* mp = mask.data_ptr<float>();
    float* op = out.data_ptr<float>();
    const auto s = static_cast<uint32_t>(static_cast<uint64_t>(seed) ^ (static_cast<uint64_t>(seed) >> 32));
    // Each element's draw depends only on its index, so the mask is the same for any
    // thread count.
    at::parallel_for(0, x.numel(), 32768, [&](int64_t b, int64_t e) { FillMasked(xp, mp, op, b, e, s, threshold, scale); });
    ctx->save_for_backward({mask});
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    at::Tensor mask = ctx->get_saved_variables()[0];
    return {grads[0] * mask, at::Tensor(), at::Tensor()};
  }
};

uint64_t NextSeed() {
  // Drawn from libtorch's default generator, which the trainer seeds per epoch, so runs
  // stay reproducible.
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get<at::CPUGeneratorImpl>()->random64();
}

}  // namespace

at::Tensor HashDropout(const at::Tensor& x, double p, uint64_t seed) {
  return HashDropoutFn::apply(x, p, static_cast<int64_t>(seed));
}

at::Tensor FastDropoutImpl::forward(at::Tensor x) {
  if (!is_training() || p_ == 0) return x;
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat) return torch::dropout(x, p_, true);
  return HashDropout(x, p_, NextSeed());
}

}  // namespace torchlet
