#include "attention.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "cpu_kernels.h"
#include "dropout.h"

namespace torchlet {

namespace {

// Everything a task reads or writes; see attention_kernels.inc for the layouts.
struct AttnArgs {
  int64_t T = 0, D = 0, H = 0, hd = 0;
  int64_t Tq = 0;  // the first Tq tokens' rows are computed
  float scale = 1.0f;
  const DropMask* drop = nullptr;
  const float* qkv = nullptr;
  float* out = nullptr;
  float* probs = nullptr;  // [N, H, Tq, T]: written by the forward when training, read by the backward
  const float* gout = nullptr;
  float* gqkv = nullptr;
};

namespace avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#pragma GCC optimize("O3")
#include "attention_kernels.inc"
#pragma GCC pop_options
}  // namespace avx2

namespace baseline {
#pragma GCC push_options
#pragma GCC optimize("O3")
#include "attention_kernels.inc"
#pragma GCC pop_options
}  // namespace baseline

using TaskKernel = void (*)(const AttnArgs&, int64_t, int64_t);

// Sequences longer than this go to libtorch's batched matmuls, which are fast enough there
// and keep the per-task scratch small.
constexpr int64_t kMaxTokens = 64;

void RunTasks(TaskKernel kernel, const AttnArgs& a, int64_t tasks) {
  // About 64k multiply-adds per chunk: a head of the ViT is 17 * 17 * 16 * 2.
  const int64_t grain = std::max<int64_t>(1, 65536 / (a.Tq * a.T * a.hd * 2));
  at::parallel_for(0, tasks, grain, [&](int64_t begin, int64_t end) { kernel(a, begin, end); });
}

AttnArgs Args(const at::Tensor& qkv, int64_t heads, int64_t queries) {
  AttnArgs a;
  a.T = qkv.size(1);
  a.Tq = queries;
  a.D = qkv.size(2) / 3;
  a.H = heads;
  a.hd = a.D / heads;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(a.hd)));
  a.qkv = qkv.data_ptr<float>();
  return a;
}

// out = attention(qkv); probs, when defined, receives the softmax weights for the backward.
at::Tensor Forward(const at::Tensor& qkv, int64_t heads, int64_t queries, double p, int64_t seed, const at::Tensor& probs) {
  AttnArgs a = Args(qkv, heads, queries);
  at::Tensor out = at::empty({qkv.size(0), queries, a.D}, qkv.options());
  const DropMask drop(p, static_cast<uint64_t>(seed));
  a.drop = p > 0 ? &drop : nullptr;
  a.out = out.data_ptr<float>();
  a.probs = probs.defined() ? probs.data_ptr<float>() : nullptr;
  RunTasks(HasAvx2Fma() ? avx2::AttentionForward : baseline::AttentionForward, a, qkv.size(0) * heads);
  return out;
}

struct AttentionFn : public torch::autograd::Function<AttentionFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& qkv, int64_t heads, int64_t queries, double p, int64_t seed) {
    at::Tensor probs = at::empty({qkv.size(0), heads, queries, qkv.size(1)}, qkv.options());
    at::Tensor out = Forward(qkv, heads, queries, p, seed, probs);
    ctx->save_for_backward({qkv, probs});
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["queries"] = queries;
    ctx->saved_data["p"] = p;
    ctx->saved_data["seed"] = seed;
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const double p = ctx->saved_data["p"].toDouble();
    const DropMask drop(p, static_cast<uint64_t>(ctx->saved_data["seed"].toInt()));
    at::Tensor gout = grads[0].contiguous();
    at::Tensor gqkv = at::empty_like(saved[0]);
    AttnArgs a = Args(saved[0], heads, ctx->saved_data["queries"].toInt());
    a.drop = p > 0 ? &drop : nullptr;
    a.probs = saved[1].data_ptr<float>();
    a.gout = gout.data_ptr<float>();
    a.gqkv = gqkv.data_ptr<float>();
    RunTasks(HasAvx2Fma() ? avx2::AttentionBackward : baseline::AttentionBackward, a, saved[0].size(0) * heads);
    return {gqkv, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool CanFuseAttention(const at::Tensor& qkv, int64_t heads) {
  return Kernels().fused_attention.load() && qkv.device().is_cpu() && qkv.scalar_type() == at::kFloat && qkv.dim() == 3 &&
         qkv.is_contiguous() && qkv.size(1) > 0 && qkv.size(1) <= kMaxTokens && qkv.size(2) % (3 * heads) == 0;
}

at::Tensor FusedAttention(const at::Tensor& qkv, int64_t heads, double p, int64_t queries) {
  TORCH_CHECK(queries >= 1 && queries <= qkv.size(1), "attention: ", queries, " query rows of ", qkv.size(1), " tokens");
  const int64_t seed = p > 0 ? static_cast<int64_t>(NextDropoutSeed()) : 0;
  if (at::GradMode::is_enabled() && qkv.requires_grad()) return AttentionFn::apply(qkv, heads, queries, p, seed);
  // Nothing to differentiate: the weights stay in each task's scratch.
  return Forward(qkv, heads, queries, p, seed, at::Tensor());
}

}  // namespace torchlet
