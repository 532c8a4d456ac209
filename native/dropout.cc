#include "dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <mutex>

namespace torchlet {

namespace {

__attribute__((target_clones("avx2", "default"))) void FillMasked(const float* x, float* mask, float* out, int64_t begin, int64_t end,
                                                                   const DropMask& drop) {
  for (int64_t i = begin; i < end; ++i) {
    const float m = drop(i);
    mask[i] = m;
    out[i] = x[i] * m;
  }
}

struct HashDropoutFn : public torch::autograd::Function<HashDropoutFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input, double p, int64_t seed) {
    // Keeps channels-last tensors channels-last; the mask follows memory order.
    at::Tensor x = input.contiguous(input.suggest_memory_format());
    at::Tensor mask = at::empty_like(x);
    at::Tensor out = at::empty_like(x);
    const DropMask drop(p, static_cast<uint64_t>(seed));
    const float* xp = x.data_ptr<float>();
    float* mp = mask.data_ptr<float>();
    float* op = out.data_ptr<float>();
    // Each element's draw depends only on its index, so the mask is the same for any
    // thread count.
    at::parallel_for(0, x.numel(), 32768, [&](int64_t b, int64_t e) { FillMasked(xp, mp, op, b, e, drop); });
    ctx->save_for_backward({mask});
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    at::Tensor mask = ctx->get_saved_variables()[0];
    return {grads[0] * mask, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

uint64_t NextDropoutSeed() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get<at::CPUGeneratorImpl>()->random64();
}

at::Tensor HashDropout(const at::Tensor& x, double p, uint64_t seed) {
  return HashDropoutFn::apply(x, p, static_cast<int64_t>(seed));
}

at::Tensor TrainingDropout(const at::Tensor& x, double p) {
  if (p == 0) return x;
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat) return torch::dropout(x, p, true);
  return HashDropout(x, p, NextDropoutSeed());
}

at::Tensor FastDropoutImpl::forward(at::Tensor x) { return is_training() ? TrainingDropout(x, p_) : x; }

}  // namespace torchlet
