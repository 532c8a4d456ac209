#include "conv_crop.h"

namespace torchlet {

namespace {

// The taps [first, last] of one kernel dimension that read the input at least once, and
// the symmetric padding that keeps every output position where it was; false when the
// whole kernel is needed or no symmetric padding fits.
struct Crop {
  int64_t first = 0, last = 0, padding = 0;
};

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

}  // namespace

at::Tensor CroppedConv(const at::Tensor& x, const torch::nn::Conv2dImpl& conv) {
  const auto& o = conv.options;
  if (x.dim() != 4 || !c10::holds_alternative<torch::ExpandingArray<2>>(o.padding())) return {};
  const auto& padding = c10::get<torch::ExpandingArray<2>>(o.padding());
  Crop h, w;
  const bool cropH = CropDim(x.size(2), (*o.kernel_size())[0], (*o.stride())[0], (*padding)[0], (*o.dilation())[0], h);
  const bool cropW = CropDim(x.size(3), (*o.kernel_size())[1], (*o.stride())[1], (*padding)[1], (*o.dilation())[1], w);
  if (!cropH && !cropW) return {};
  if (!cropH) h = {0, (*o.kernel_size())[0] - 1, (*padding)[0]};
  if (!cropW) w = {0, (*o.kernel_size())[1] - 1, (*padding)[1]};
  at::Tensor weight = conv.weight.slice(2, h.first, h.last + 1).slice(3, w.first, w.last + 1);
  return at::conv2d(x, weight, conv.bias, *o.stride(), {h.padding, w.padding}, *o.dilation(), o.groups());
}

}  // namespace torchlet
