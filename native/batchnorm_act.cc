#include "batchnorm_act.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_kernels.h"
#include "dropout.h"
#include "errors.h"

namespace torchlet {

namespace {

// Everything a row kernel reads or writes; per-channel arrays hold C floats.
struct RowArgs {
  int64_t C = 0;
  bool relu = false;
  const DropMask* drop = nullptr;
  const float* x = nullptr;
  const float* gy = nullptr;
  float* y = nullptr;  // the output, or dx in backward
  const float* ref = nullptr;
  const float* scale = nullptr;
  const float* shift = nullptr;
  const float* mean = nullptr;
  const float* a = nullptr;
  const float* b = nullptr;
};

namespace avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include "batchnorm_kernels.inc"
#pragma GCC pop_options
}  // namespace avx2

namespace baseline {
#include "batchnorm_kernels.inc"
}  // namespace baseline

using RowKernel = void (*)(const RowArgs&, int64_t, int64_t, float*);

struct Kernels {
  RowKernel stats, normalise, grad_sums, grad_input;
};

const Kernels& Pick() {
  static const Kernels k = HasAvx2Fma()
                               ? Kernels{avx2::Stats, avx2::Normalise, avx2::GradSums, avx2::GradInput}
                               : Kernels{baseline::Stats, baseline::Normalise, baseline::GradSums, baseline::GradInput};
  return k;
}

// Partial sums over this many rows stay accurate in float; their total is kept in double.
constexpr int64_t kChunkRows = 256;
// Below about this many elements a second thread costs more than it saves.
constexpr int64_t kGrainElements = 32768;

// Runs a summing kernel over all rows in parallel. Each chunk writes its own partial sums,
// added in chunk order, so the result does not depend on the thread count.
std::vector<double> Reduce(RowKernel kernel, const RowArgs& a, int64_t rows) {
  const int64_t chunks = (rows + kChunkRows - 1) / kChunkRows, width = 2 * a.C;
  std::vector<float> part(chunks * width);
  const int64_t grain = std::max<int64_t>(1, kGrainElements / (kChunkRows * a.C));
  at::parallel_for(0, chunks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) kernel(a, k * kChunkRows, std::min(rows, (k + 1) * kChunkRows), part.data() + k * width);
  });
  std::vector<double> total(width, 0.0);
  for (int64_t k = 0; k < chunks; ++k) {
    for (int64_t j = 0; j < width; ++j) total[j] += part[k * width + j];
  }
  return total;
}

void ForEachRow(RowKernel kernel, const RowArgs& a, int64_t rows) {
  at::parallel_for(0, rows, std::max<int64_t>(1, kGrainElements / a.C), [&](int64_t begin, int64_t end) { kernel(a, begin, end, nullptr); });
}

std::vector<float> ToVector(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// A tensor that owns a copy of v.
at::Tensor FromVector(const std::vector<float>& v, const at::Tensor& like) {
  return torch::from_blob(const_cast<float*>(v.data()), {static_cast<int64_t>(v.size())}, torch::TensorOptions().dtype(at::kFloat)).to(like.dtype(), false, true);
}

// scale = gamma * invstd and shift = beta - mean * scale: the affine map of the forward pass.
void Affine(const std::vector<float>& gamma, const std::vector<float>& beta, const std::vector<float>& mean, const std::vector<float>& invstd,
            std::vector<float>& scale, std::vector<float>& shift) {
  const size_t C = gamma.size();
  scale.resize(C);
  shift.resize(C);
  for (size_t c = 0; c < C; ++c) {
    scale[c] = gamma[c] * invstd[c];
    shift[c] = beta[c] - mean[c] * scale[c];
  }
}

struct BatchNormActFn : public torch::autograd::Function<BatchNormActFn> {
  // factor: the running-statistics momentum for this step.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                            at::Tensor running_mean, at::Tensor running_var, double factor, double eps, bool relu, double p, int64_t seed) {
    at::Tensor x = ChannelsLast(input);
    const int64_t C = x.size(1), rows = x.numel() / C;
    if (rows < 2) {
      throw RangeError("batch norm in training needs more than one value per channel, got input of shape " + ShapeString(input.sizes()));
    }
    const float* xp = x.data_ptr<float>();
    std::vector<float> ref(xp, xp + C);  // a sample of each channel, to centre the sums on
    RowArgs a;
    a.C = C;
    a.x = xp;
    a.ref = ref.data();
    std::vector<double> sums = Reduce(Pick().stats, a, rows);

    std::vector<float> mean(C), invstd(C), batch_var(C);
    for (int64_t c = 0; c < C; ++c) {
      const double shifted = sums[c] / static_cast<double>(rows);
      const double var = std::max(0.0, sums[C + c] / static_cast<double>(rows) - shifted * shifted);
      mean[c] = static_cast<float>(ref[c] + shifted);
      invstd[c] = static_cast<float>(1.0 / std::sqrt(var + eps));
      batch_var[c] = static_cast<float>(var * static_cast<double>(rows) / static_cast<double>(rows - 1));  // unbiased, as PyTorch keeps
    }
    running_mean.mul_(1 - factor).add_(FromVector(mean, running_mean), factor);
    running_var.mul_(1 - factor).add_(FromVector(batch_var, running_var), factor);

    std::vector<float> scale, shift;
    Affine(ToVector(weight), ToVector(bias), mean, invstd, scale, shift);
    at::Tensor y = at::empty_like(x, at::MemoryFormat::ChannelsLast);
    const DropMask drop(p, static_cast<uint64_t>(seed));
    a.relu = relu;
    a.drop = p > 0 ? &drop : nullptr;
    a.scale = scale.data();
    a.shift = shift.data();
    a.y = y.data_ptr<float>();
    ForEachRow(Pick().normalise, a, rows);

    ctx->save_for_backward({x, weight, bias});
    ctx->saved_data["mean"] = FromVector(mean, x);
    ctx->saved_data["invstd"] = FromVector(invstd, x);
    ctx->saved_data["relu"] = relu;
    ctx->saved_data["p"] = p;
    ctx->saved_data["seed"] = seed;
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    at::Tensor gy = grads[0].contiguous(at::MemoryFormat::ChannelsLast);
    const int64_t C = x.size(1), rows = x.numel() / C;
    std::vector<float> mean = ToVector(ctx->saved_data["mean"].toTensor()), invstd = ToVector(ctx->saved_data["invstd"].toTensor());
    std::vector<float> scale, shift;
    Affine(ToVector(saved[1]), ToVector(saved[2]), mean, invstd, scale, shift);
    const double p = ctx->saved_data["p"].toDouble();
    const DropMask drop(p, static_cast<uint64_t>(ctx->saved_data["seed"].toInt()));

    RowArgs a;
    a.C = C;
    a.relu = ctx->saved_data["relu"].toBool();
    a.drop = p > 0 ? &drop : nullptr;
    a.x = x.data_ptr<float>();
    a.gy = gy.data_ptr<float>();
    a.scale = scale.data();
    a.shift = shift.data();
    a.mean = mean.data();
    std::vector<double> sums = Reduce(Pick().grad_sums, a, rows);

    // With g the gradient at the BN output and xhat = (x - mean) * invstd:
    // dbeta = sum g, dgamma = sum g * xhat, dx = scale * (g - dbeta / M - xhat * dgamma / M).
    std::vector<float> dgamma(C), dbeta(C), coef_a(C), coef_b(C);
    const double m = static_cast<double>(rows);
    for (int64_t c = 0; c < C; ++c) {
      dbeta[c] = static_cast<float>(sums[c]);
      dgamma[c] = static_cast<float>(sums[C + c] * invstd[c]);
      coef_a[c] = static_cast<float>(-scale[c] * sums[c] / m);
      coef_b[c] = static_cast<float>(-static_cast<double>(scale[c]) * invstd[c] * invstd[c] * sums[C + c] / m);
    }
    at::Tensor dx = at::empty_like(x, at::MemoryFormat::ChannelsLast);
    a.a = coef_a.data();
    a.b = coef_b.data();
    a.y = dx.data_ptr<float>();
    ForEachRow(Pick().grad_input, a, rows);

    return {dx,
            FromVector(dgamma, saved[1]),
            FromVector(dbeta, saved[2]),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

// Eval mode, no autograd: the running statistics folded into one affine map.
at::Tensor Inference(const at::Tensor& input, torch::nn::BatchNorm2dImpl& bn, bool relu) {
  at::Tensor x = ChannelsLast(input);
  const int64_t C = x.size(1);
  std::vector<float> var = ToVector(bn.running_var), mean = ToVector(bn.running_mean), invstd(C), scale, shift;
  for (int64_t c = 0; c < C; ++c) invstd[c] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var[c]) + bn.options.eps()));
  Affine(ToVector(bn.weight), ToVector(bn.bias), mean, invstd, scale, shift);
  at::Tensor y = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  RowArgs a;
  a.C = C;
  a.relu = relu;
  a.x = x.data_ptr<float>();
  a.y = y.data_ptr<float>();
  a.scale = scale.data();
  a.shift = shift.data();
  ForEachRow(Pick().normalise, a, x.numel() / C);
  return y;
}

}  // namespace

bool CanFuseBatchNormAct(const at::Tensor& x, const torch::nn::BatchNorm2dImpl& bn) {
  if (x.dim() != 4 || !x.device().is_cpu() || x.scalar_type() != at::kFloat || x.numel() == 0) return false;
  if (!bn.weight.defined() || !bn.bias.defined() || !bn.running_mean.defined() || !bn.running_var.defined()) return false;
  // Eval mode is fused only without autograd (evaluate and predict run in inference mode).
  return bn.is_training() || !at::GradMode::is_enabled();
}

at::Tensor BatchNormAct(const at::Tensor& x, torch::nn::BatchNorm2dImpl& bn, bool relu, double dropout) {
  if (!bn.is_training()) return Inference(x, bn, relu);
  double factor = 0;
  {
    torch::NoGradGuard no_grad;
    bn.num_batches_tracked.add_(1);
    // momentum None means a cumulative average, as in PyTorch.
    factor = bn.options.momentum() ? *bn.options.momentum() : 1.0 / static_cast<double>(bn.num_batches_tracked.item<int64_t>());
  }
  const int64_t seed = dropout > 0 ? static_cast<int64_t>(NextDropoutSeed()) : 0;
  return BatchNormActFn::apply(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, factor, bn.options.eps(), relu, dropout, seed);
}

at::Tensor ChannelsLast(const at::Tensor& x) {
  if (x.dim() != 4) return x;
  // A contiguous single-channel tensor has channels-last memory already; only the strides
  // say otherwise, and oneDNN picks its layout from them.
  if (x.size(1) == 1 && x.is_contiguous()) return x.as_strided(x.sizes(), {x.size(2) * x.size(3), 1, x.size(3), 1});
  return x.contiguous(at::MemoryFormat::ChannelsLast);
}

}  // namespace torchlet
