#include "sgd_step.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <string>

#include "cpu_kernels.h"

namespace torchlet {

namespace {

// One step's factors, each rounded to float as libtorch's kernels round a Scalar.
struct StepArgs {
  float weight_decay, momentum, keep, neg_lr;  // keep = 1 - dampening
  bool decay, nesterov, first;
  float* p;
  const float* g;
  float* buf;  // null without momentum
};

// libtorch's operations in its order, each an FMA where ATen's vectorised add with alpha is
// one (vec::fmadd(other, alpha, self)) and a plain product where mul_ is:
//   d = g.add(p, wd); buf = first ? d : buf.mul_(m).add_(d, keep);
//   d = nesterov ? d.add(buf, m) : buf; p.add_(d, -lr)
__attribute__((target("avx2,fma"))) void SgdRange(const StepArgs& a, int64_t begin, int64_t end) {
  const __m256 wd = _mm256_set1_ps(a.weight_decay), m = _mm256_set1_ps(a.momentum), keep = _mm256_set1_ps(a.keep),
               lr = _mm256_set1_ps(a.neg_lr);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 w = _mm256_loadu_ps(a.p + i);
    __m256 d = _mm256_loadu_ps(a.g + i);
    if (a.decay) d = _mm256_fmadd_ps(w, wd, d);
    if (a.buf != nullptr) {
      const __m256 b = a.first ? d : _mm256_fmadd_ps(d, keep, _mm256_mul_ps(_mm256_loadu_ps(a.buf + i), m));
      _mm256_storeu_ps(a.buf + i, b);
      d = a.nesterov ? _mm256_fmadd_ps(b, m, d) : b;
    }
    _mm256_storeu_ps(a.p + i, _mm256_fmadd_ps(d, lr, w));
  }
  for (; i < end; ++i) {
    const float w = a.p[i];
    float d = a.g[i];
    if (a.decay) d = __builtin_fmaf(w, a.weight_decay, d);
    if (a.buf != nullptr) {
      const float b = a.first ? d : __builtin_fmaf(d, a.keep, a.buf[i] * a.momentum);
      a.buf[i] = b;
      d = a.nesterov ? __builtin_fmaf(b, a.momentum, d) : b;
    }
    a.p[i] = __builtin_fmaf(d, a.neg_lr, w);
  }
}

bool DenseFloatCpu(const at::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.layout() == at::kStrided && t.is_non_overlapping_and_dense(); }

// Laid out as `like` (a dense tensor), so that the three walk memory in the same order.
at::Tensor LaidOutAs(const at::Tensor& t, const at::Tensor& like) { return t.strides() == like.strides() ? t : at::empty_like(like).copy_(t); }

}  // namespace

torch::Tensor FusedSgd::step(LossClosure closure) {
  if (closure != nullptr || !Kernels().fused_optimizer || !HasAvx2Fma()) return SGD::step(std::move(closure));
  for (auto& group : param_groups_) {
    for (auto& p : group.params()) {
      if (p.grad().defined() && !(DenseFloatCpu(p) && DenseFloatCpu(p.grad()))) return SGD::step();
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::SGDOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const at::Tensor g = LaidOutAs(p.grad(), p);
      StepArgs a{static_cast<float>(o.weight_decay()), static_cast<float>(o.momentum()), static_cast<float>(1 - o.dampening()),
                 static_cast<float>(-1 * o.lr()), o.weight_decay() != 0, o.nesterov(), false, p.data_ptr<float>(), g.data_ptr<float>(), nullptr};
      at::Tensor buf;
      if (o.momentum() != 0) {
        const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
        auto found = state_.find(key);
        a.first = found == state_.end();
        if (a.first) {
          buf = at::empty_like(p);
          auto state = std::make_unique<torch::optim::SGDParamState>();
          state->momentum_buffer(buf);
          state_[key] = std::move(state);
        } else {
          auto& state = static_cast<torch::optim::SGDParamState&>(*found->second);
          buf = LaidOutAs(state.momentum_buffer(), p);
          state.momentum_buffer(buf);
        }
        a.buf = buf.data_ptr<float>();
      }
      at::parallel_for(0, p.numel(), 32768, [&](int64_t begin, int64_t end) { SgdRange(a, begin, end); });
    }
  }
  return {};
}

}  // namespace torchlet
