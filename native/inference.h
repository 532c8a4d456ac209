// Inference on the CPU with the weights frozen: each conv2d takes in the batch norm and the
// ReLU after it (eval-mode dropout is the identity) and runs through XNNPACK, which libtorch
// ships for this. For small batches libtorch's own kernels cost more than the arithmetic:
// one SuperLight image took ~300 us, two thirds of it in im2col + reference-BLAS sgemm.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace torchlet {

struct LayerSpec;

// Passes of up to this many rows run the folded convs through XNNPACK, which libtorch's
// oneDNN convs beat only on larger batches; larger passes run them through at::conv2d,
// channels-last, with the kernel cropped to small inputs (conv_crop.h).
constexpr int64_t kSmallPassRows = 64;

// One step of a plan: a fused conv (+ batch norm) (+ ReLU), or a layer run as it is.
struct InferenceStep {
  size_t layer = 0;  // the layer run as it is (when !fused)
  bool fused = false;
  c10::IValue packed;  // XNNPACK's prepacked conv, or None: then weight/bias run through at::conv2d
  at::Tensor weight, bias;
  bool relu = false;
  std::vector<int64_t> stride{1, 1}, padding{0, 0}, dilation{1, 1};  // [height, width]
  int64_t groups = 1;
};

// The tensors a plan was made from, so that a plan made before the weights changed (a
// load, a training step, a move) is never used.
struct InferenceSource {
  at::Tensor tensor;
  int64_t version;
  const void* data;
};

struct InferencePlan {
  std::vector<InferenceStep> steps;
  std::vector<InferenceSource> sources;

  bool Current() const;
  at::Tensor Run(at::Tensor x, std::vector<torch::nn::AnyModule>& layers) const;
};

// A plan for these layers (a Sequential's), or null when there is nothing to fold.
std::shared_ptr<const InferencePlan> MakeInferencePlan(const std::vector<torch::nn::AnyModule>& layers,
                                                       const std::vector<const LayerSpec*>& specs);

}  // namespace torchlet
