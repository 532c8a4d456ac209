#include "inference.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include "batchnorm_act.h"
#include "conv_crop.h"
#include "cpu_kernels.h"
#include "spec.h"

namespace torchlet {

namespace {

// XNNPACK's conv ops, registered by libtorch builds that have it (PyTorch's own and
// Debian's do); without them the fused convs run through at::conv2d.
const c10::optional<c10::OperatorHandle>& PrepackOp() {
  static const auto op = c10::Dispatcher::singleton().findSchema({"prepacked::conv2d_clamp_prepack", ""});
  return op;
}

const c10::optional<c10::OperatorHandle>& RunOp() {
  static const auto op = c10::Dispatcher::singleton().findSchema({"prepacked::conv2d_clamp_run", ""});
  return op;
}

void Track(InferencePlan& plan, const at::Tensor& t) {
  if (t.defined()) plan.sources.push_back({t, t._version(), t.data_ptr()});
}

InferenceStep FuseConv(InferencePlan& plan, const std::vector<torch::nn::AnyModule>& layers, const std::vector<const LayerSpec*>& specs,
                       size_t& i) {
  auto* conv = layers[i].ptr()->as<torch::nn::Conv2dImpl>();
  const LayerSpec& s = *specs[i];
  InferenceStep step;
  step.fused = true;
  step.stride.assign(s.stride.begin(), s.stride.end());
  step.padding.assign(s.padding.begin(), s.padding.end());
  step.dilation.assign(s.dilation.begin(), s.dilation.end());
  step.groups = s.groups;
  Track(plan, conv->weight);
  Track(plan, conv->bias);
  at::Tensor w = conv->weight.detach().to(at::kFloat);
  at::Tensor b = conv->bias.defined() ? conv->bias.detach().to(at::kFloat) : at::zeros({w.size(0)}, w.options());
  ++i;
  auto* bn = i < layers.size() && specs[i]->type == "batchnorm2d" ? layers[i].ptr()->as<torch::nn::BatchNorm2dImpl>() : nullptr;
  if (bn != nullptr && bn->running_mean.defined() && bn->running_var.defined()) {
    for (const auto& t : {bn->weight, bn->bias, bn->running_mean, bn->running_var}) Track(plan, t);
    // Eval-mode batch norm is y = (x - mean) / sqrt(var + eps) * gamma + beta: a per-channel
    // scale and shift, folded into the conv's weight and bias as the ONNX export does.
    at::Tensor scale = (bn->running_var.detach() + bn->options.eps()).rsqrt();
    if (bn->weight.defined()) scale = scale * bn->weight.detach();
    w = w * scale.view({-1, 1, 1, 1});
    b = (b - bn->running_mean.detach()) * scale;
    if (bn->bias.defined()) b = b + bn->bias.detach();
    ++i;
    bn = nullptr;
  }
  // A batch norm left unfolded (no running statistics) runs as a layer, and the ReLU after it too.
  if (bn == nullptr && i < layers.size() && specs[i]->type == "relu") {
    step.relu = true;
    ++i;
  }
  while (bn == nullptr && i < layers.size() && (specs[i]->type == "dropout" || specs[i]->type == "dropout2d")) ++i;
  step.weight = w.contiguous();
  step.bias = b.contiguous();
  if (PrepackOp() && RunOp()) {
    torch::jit::Stack stack{step.weight, step.bias, step.stride, step.padding, step.dilation, s.groups,
                            step.relu ? c10::IValue(0.0) : c10::IValue(), c10::IValue()};
    try {
      PrepackOp()->callBoxed(&stack);
      step.packed = std::move(stack.at(0));
    } catch (const c10::Error&) {
      // A conv XNNPACK does not take runs through at::conv2d.
      step.packed = c10::IValue();
    }
  }
  return step;
}

}  // namespace

std::shared_ptr<const InferencePlan> MakeInferencePlan(const std::vector<torch::nn::AnyModule>& layers,
                                                       const std::vector<const LayerSpec*>& specs) {
  auto plan = std::make_shared<InferencePlan>();
  bool fused = false;
  for (size_t i = 0; i < layers.size();) {
    if (specs[i]->type == "conv2d" && layers[i].ptr()->as<torch::nn::Conv2dImpl>() != nullptr) {
      plan->steps.push_back(FuseConv(*plan, layers, specs, i));
      fused = true;
    } else {
      InferenceStep step;
      step.layer = i++;
      plan->steps.push_back(std::move(step));
    }
  }
  if (!fused) return nullptr;
  return plan;
}

bool InferencePlan::Current() const {
  for (const auto& s : sources) {
    if (s.tensor._version() != s.version || s.tensor.data_ptr() != s.data) return false;
  }
  return true;
}

at::Tensor InferencePlan::Run(at::Tensor x, std::vector<torch::nn::AnyModule>& layers) const {
  for (const auto& step : steps) {
    if (!step.fused) {
      x = layers[step.layer].forward(x);
    } else if (!step.packed.isNone() && x.size(0) <= kSmallPassRows) {
      torch::jit::Stack stack{x, step.packed};
      RunOp()->callBoxed(&stack);
      x = stack.at(0).toTensor();
    } else {
      if (Kernels().channels_last) x = ChannelsLast(x);
      at::Tensor y = Kernels().crop_convs ? CroppedConv(x, step.weight, step.bias, step.stride, step.padding, step.dilation, step.groups) : at::Tensor();
      x = y.defined() ? y : at::conv2d(x, step.weight, step.bias, step.stride, step.padding, step.dilation, step.groups);
      if (step.relu) x = x.clamp_min_(0);
    }
  }
  return x;
}

}  // namespace torchlet
