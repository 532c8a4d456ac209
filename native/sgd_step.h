// libtorch's SGD with its step fused into one pass over each parameter.
#pragma once

#include <torch/torch.h>

namespace torchlet {

// libtorch's SGD, whose step (weight decay, momentum, Nesterov, dampening) walks each
// parameter, its gradient and its momentum buffer once, in one kernel, instead of up to five
// whole-tensor operations, each its own pass through memory (parallel_cnn's parameters are
// 104 MB). The arithmetic is libtorch's, operation by operation and rounding by rounding, so
// the weights are bitwise the same; the state (momentum buffers under libtorch's keys) is
// SGD's own, so checkpoints and the unfused step read it alike. It steps as libtorch does
// when CpuKernels::fused_optimizer is off, on a CPU without AVX2 and FMA, and for any
// parameter that is not a dense float32 CPU tensor.
class FusedSgd final : public torch::optim::SGD {
 public:
  using torch::optim::SGD::SGD;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace torchlet
