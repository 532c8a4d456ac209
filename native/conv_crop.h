// A convolution whose input is smaller than its kernel's reach: at 28x28, resnet18's
// layer4 and mobilenet's last stages see 1x1 or 2x2 maps, where most taps of a padded 3x3
// kernel only ever multiply the zero padding (8 of 9 at 1x1). libtorch computes them all;
// cropping the kernel to the taps that reach the input gives the same output and the same
// gradients (the cropped-away taps' gradient is exactly zero either way) for a fraction of
// the work.
#pragma once

#include <torch/torch.h>

namespace torchlet {

// conv's output for x with the kernel cropped to the taps that read the input, or an
// undefined tensor when no tap can be cropped (then run the layer as it is).
at::Tensor CroppedConv(const at::Tensor& x, const torch::nn::Conv2dImpl& conv);

// The same for a bare weight (no autograd: the inference plan's folded convolutions).
at::Tensor CroppedConv(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                       at::IntArrayRef dilation, int64_t groups);

}  // namespace torchlet
