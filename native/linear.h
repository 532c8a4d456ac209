// Fully connected layers whose large products run through oneDNN's sgemm.
#pragma once

#include <torch/torch.h>

namespace torchlet {

// y = x W^T + b, as at::linear computes it, for input [..., in]. Products of at least
// kOneDnnMinMacs multiply-adds on dense float32 CPU tensors run through oneDNN's sgemm when
// libtorch has loaded the shared oneDNN (Debian's libtorch links libdnnl.so.2) and
// CpuKernels::onednn_gemm is on: its JIT kernels use this CPU's full vector width, where the
// OpenBLAS build beside it may be pinned to narrower ones (README, "The model zoo"). Every
// other case, and every small product (a 10-class head keeps its exact rounding), is
// at::linear's.
at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

inline constexpr int64_t kOneDnnMinMacs = int64_t{1} << 20;

// Whether oneDNN's sgemm was found in the loaded libraries.
bool HasOneDnnSgemm();

// torch::nn::Linear, whose forward is Linear above; its parameters, names and options are
// nn::Linear's, so state_dicts do not change.
class FastLinearImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;
  at::Tensor forward(const at::Tensor& x) { return Linear(x, weight, bias); }
};
TORCH_MODULE(FastLinear);

}  // namespace torchlet
