#include "conv_crop.h"

namespace torchlet {

namespace {

// The taps [first, last] of one kernel dimension that read the input at least once, and
// the symmetric padding that keeps every output position where it was.
struct Crop {
  int64_t first = 0, last = 0, padding = 0;
};

// One dimension's crop; false when the whole kernel is needed or no symmetric padding fits.
bool CropDim(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation, Crop& crop) {
  if (padding == 0) return false;
  const int64_t out = (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
  if (out <= 0) return false;
  int64_t first = kernel, last = -1;
  for (int64_t j = 0; j < kernel; ++j) {
    for (int64_t i = 0; i < out; ++i) {
      const int64_t row = i * stride - padding + j * dilation;
      if (row >= 0 && row < in) {
        first = std::min(first, j);
        last = std::max(last, j);
        break;
      }
    }
  }
  if (last < 0 || (first == 0 && last == kernel - 1)) return false;
  const int64_t pad = padding - first * dilation;
  const int64_t reach = dilation * (last - first);
  if (pad < 0 || (in + 2 * pad - reach - 1) / stride + 1 != out) return false;
  crop = {first, last, pad};
  return true;
}

// Slicing the weight inside autograd would cost two full-size zero tensors per step in
// SliceBackward (resnet18 at 28x28: 12 ms a step, more than the crop saved there); this
// backward writes the cropped gradient into one.
struct CroppedConvFn : public torch::autograd::Function<CroppedConvFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            std::vector<int64_t> taps, std::vector<int64_t> stride, std::vector<int64_t> padding,
                            std::vector<int64_t> dilation, int64_t groups) {
    at::Tensor w = weight.slice(2, taps[0], taps[1]).slice(3, taps[2], taps[3]).contiguous();
    ctx->save_for_backward({x, w});
    ctx->saved_data["taps"] = taps;
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["sizes"] = weight.sizes().vec();
    const bool has_bias = bias.numel() > 0;  // see CroppedConv below
    ctx->saved_data["bias"] = has_bias;
    return at::conv2d(x, w, has_bias ? c10::optional<at::Tensor>(bias) : c10::nullopt, stride, padding, dilation, groups);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1];
    const std::vector<int64_t> taps = ctx->saved_data["taps"].toIntVector();
    const bool bias = ctx->saved_data["bias"].toBool();
    const std::vector<int64_t> bias_sizes{w.size(0)};
    auto [gx, gw, gb] = at::convolution_backward(grads[0], x, w, bias ? at::OptionalIntArrayRef(bias_sizes) : c10::nullopt,
                                                 ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
                                                 ctx->saved_data["dilation"].toIntVector(), false, {0, 0}, ctx->saved_data["groups"].toInt(),
                                                 {x.requires_grad(), true, bias});
    at::Tensor full = at::zeros(ctx->saved_data["sizes"].toIntVector(), gw.options());
    full.slice(2, taps[0], taps[1]).slice(3, taps[2], taps[3]).copy_(gw);
    return {gx, full, bias ? gb : at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// The crop of each dimension of weight for x, or false when neither can be cropped.
bool CropFor(const at::Tensor& x, const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, Crop& h,
             Crop& w) {
  if (x.dim() != 4 || weight.dim() != 4) return false;
  const bool cropH = CropDim(x.size(2), weight.size(2), stride[0], padding[0], dilation[0], h);
  const bool cropW = CropDim(x.size(3), weight.size(3), stride[1], padding[1], dilation[1], w);
  if (!cropH && !cropW) return false;
  if (!cropH) h = {0, weight.size(2) - 1, padding[0]};
  if (!cropW) w = {0, weight.size(3) - 1, padding[1]};
  return true;
}

}  // namespace

at::Tensor CroppedConv(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                       at::IntArrayRef dilation, int64_t groups) {
  Crop h, w;
  if (!CropFor(x, weight, stride, padding, dilation, h, w)) return {};
  return at::conv2d(x, weight.slice(2, h.first, h.last + 1).slice(3, w.first, w.last + 1), bias, stride, {h.padding, w.padding}, dilation,
                    groups);
}

at::Tensor CroppedConv(const at::Tensor& x, const torch::nn::Conv2dImpl& conv) {
  const auto& o = conv.options;
  if (!c10::holds_alternative<torch::ExpandingArray<2>>(o.padding())) return {};
  const auto& pad = c10::get<torch::ExpandingArray<2>>(o.padding());
  const std::vector<int64_t> stride(o.stride()->begin(), o.stride()->end()), dilation(o.dilation()->begin(), o.dilation()->end()),
      padding(pad->begin(), pad->end());
  if (!conv.weight.requires_grad() || !at::GradMode::is_enabled()) return CroppedConv(x, conv.weight, conv.bias, stride, padding, dilation, o.groups());
  Crop h, w;
  if (!CropFor(x, conv.weight, stride, padding, dilation, h, w)) return {};
  // A conv without bias passes an empty tensor: autograd functions take defined inputs only.
  return CroppedConvFn::apply(x, conv.weight, conv.bias.defined() ? conv.bias : at::empty({0}, conv.weight.options()),
                              std::vector<int64_t>{h.first, h.last + 1, w.first, w.last + 1}, stride, std::vector<int64_t>{h.padding, w.padding},
                              dilation, o.groups());
}

}  // namespace torchlet
