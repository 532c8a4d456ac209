// BatchNorm2d, optionally followed by ReLU and dropout, as one CPU kernel over
// channels-last activations. libtorch 1.13 runs these as separate passes (and its
// channels-last batch norm is several times slower than its NCHW one), while its oneDNN
// convolutions' backward pass is several times faster on channels-last input: fusing the
// normalisation lets the whole network stay channels-last on CPU.
//
// Same semantics as nn.BatchNorm2d (batch statistics and running-statistics update in
// training, running statistics in eval) -> nn.ReLU -> nn.Dropout. Nothing extra is
// stored for backward: the ReLU and dropout masks are recomputed from the input and the
// dropout seed.
#pragma once

#include <torch/torch.h>

namespace torchlet {

// Whether BatchNormAct can take this input and layer (4-d float on CPU, an affine layer
// with running statistics, and in eval mode no autograd); otherwise use the modules.
bool CanFuseBatchNormAct(const at::Tensor& x, const torch::nn::BatchNorm2dImpl& bn);

// bn's weight, bias and running statistics are used and, in training, updated as
// nn.BatchNorm2d would. dropout > 0 applies only in training. Returns a channels-last tensor.
at::Tensor BatchNormAct(const at::Tensor& x, torch::nn::BatchNorm2dImpl& bn, bool relu, double dropout);

// The same memory as x where possible, laid out channels-last (a single-channel NCHW
// tensor already is; its strides are rewritten so that kernels see it as such).
at::Tensor ChannelsLast(const at::Tensor& x);

}  // namespace torchlet
