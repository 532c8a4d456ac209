// The layers and blocks that the zoo's networks need beyond a chain of convolutions:
// residual sums, channel scaling (squeeze-and-excitation), activations, stochastic depth,
// token layouts, learned tokens, multi-head self-attention and the transformer encoder
// layer. Each keeps the state names of its PyTorch counterpart.
#pragma once

#include <torch/torch.h>

#include <string>

#include "linear.h"
#include "spec.h"

namespace torchlet {

// main(x) + shortcut(x), the shortcut being the identity when there is none.
class ResidualImpl : public torch::nn::Module {
 public:
  explicit ResidualImpl(const LayerSpec& spec) : spec_(&spec) {}
  // The paths are built after the block, so that their layers can register on it.
  void Wire(Sequential main, torch::nn::AnyModule shortcut);
  at::Tensor forward(at::Tensor x);

 private:
  const LayerSpec* spec_;
  Sequential main_{nullptr};
  torch::nn::AnyModule shortcut_;
};
TORCH_MODULE(Residual);

// x * branch(x): the branch's [N, C, 1, 1] output scales each channel (squeeze-and-excitation).
class ScaleImpl : public torch::nn::Module {
 public:
  explicit ScaleImpl(const LayerSpec& spec) : spec_(&spec) {}
  void Wire(Sequential branch) { branch_ = std::move(branch); }
  at::Tensor forward(at::Tensor x);

 private:
  const LayerSpec* spec_;
  Sequential branch_{nullptr};
};
TORCH_MODULE(Scale);

enum class Act { kRelu6, kHardswish, kHardsigmoid, kSilu, kGelu, kSigmoid };

class ActivationImpl : public torch::nn::Module {
 public:
  explicit ActivationImpl(Act act) : act_(act) {}
  at::Tensor forward(at::Tensor x);

 private:
  Act act_;
};
TORCH_MODULE(Activation);

// torchvision.ops.StochasticDepth: in training, each row ("row") or the whole batch
// ("batch") is dropped with probability p and the survivors scaled by 1 / (1 - p);
// the identity in eval.
class StochasticDepthImpl : public torch::nn::Module {
 public:
  StochasticDepthImpl(double p, bool row) : p_(p), row_(row) {}
  at::Tensor forward(at::Tensor x);

 private:
  double p_;
  bool row_;
};
TORCH_MODULE(StochasticDepth);

// x.reshape(N, shape...), x.transpose(a, b), x.select(dim, index): token layouts.
class ReshapeImpl : public torch::nn::Module {
 public:
  explicit ReshapeImpl(std::vector<int64_t> shape) : shape_(std::move(shape)) {}
  at::Tensor forward(at::Tensor x);

 private:
  std::vector<int64_t> shape_;
};
TORCH_MODULE(Reshape);

class TransposeImpl : public torch::nn::Module {
 public:
  TransposeImpl(int64_t a, int64_t b) : a_(a), b_(b) {}
  at::Tensor forward(at::Tensor x) { return x.transpose(a_, b_); }

 private:
  int64_t a_, b_;
};
TORCH_MODULE(Transpose);

class SelectImpl : public torch::nn::Module {
 public:
  SelectImpl(int64_t dim, int64_t index) : dim_(dim), index_(index) {}
  at::Tensor forward(at::Tensor x) { return x.select(dim_, index_); }

 private:
  int64_t dim_, index_;
};
TORCH_MODULE(Select);

// A learned [1, 1, D] token put in front of the sequence (a ViT's class token). The
// parameter itself is registered on the enclosing module under the layer's name.
class TokenImpl : public torch::nn::Module {
 public:
  explicit TokenImpl(at::Tensor token) : token_(std::move(token)) {}
  at::Tensor forward(at::Tensor x);

 private:
  at::Tensor token_;
};
TORCH_MODULE(Token);

// Adds a learned [1, T, D] position embedding, registered like TokenImpl's token.
class PositionEmbeddingImpl : public torch::nn::Module {
 public:
  PositionEmbeddingImpl(const LayerSpec& spec, at::Tensor embedding) : spec_(&spec), embedding_(std::move(embedding)) {}
  at::Tensor forward(at::Tensor x);

 private:
  const LayerSpec* spec_;
  at::Tensor embedding_;
};
TORCH_MODULE(PositionEmbedding);

// Self-attention over [N, T, D] (batch first) with nn.MultiheadAttention's state names:
// in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias.
class MultiheadAttentionImpl : public torch::nn::Module {
 public:
  MultiheadAttentionImpl(int64_t dim, int64_t heads, double dropout, bool bias);
  // The rows of the first `queries` tokens only, attending over all of them: [N, queries, D].
  at::Tensor Attend(const at::Tensor& x, int64_t queries);
  at::Tensor forward(at::Tensor x);

  at::Tensor in_proj_weight, in_proj_bias;
  FastLinear out_proj{nullptr};

 private:
  int64_t dim_, heads_;
  double dropout_;
};
TORCH_MODULE(MultiheadAttention);

// nn.TransformerEncoderLayer(batch_first=True): self_attn, linear1, dropout, linear2,
// norm1, norm2, dropout1, dropout2; pre-norm when norm_first.
class TransformerEncoderLayerImpl : public torch::nn::Module {
 public:
  explicit TransformerEncoderLayerImpl(const LayerSpec& spec);
  at::Tensor forward(at::Tensor x);

 private:
  at::Tensor FeedForward(const at::Tensor& x);

  const LayerSpec* spec_;
  MultiheadAttention self_attn{nullptr};
  FastLinear linear1{nullptr}, linear2{nullptr};
  torch::nn::AnyModule dropout, dropout1, dropout2;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
};
TORCH_MODULE(TransformerEncoderLayer);

// x.flatten(1) of a channels-last [N, C, H, W] activation (a copy into NCHW order) whose
// backward hands the gradient back channels-last. Otherwise the gradient reaches the layers
// before the flatten in NCHW order while they saved channels-last tensors, and libtorch's
// elementwise backward over mixed layouts runs some 30x slower (threshold_backward on
// 64x256x7x7: 1.84 ms, against 0.05 ms with both in one layout).
at::Tensor FlattenChannelsLast(const at::Tensor& x);

}  // namespace torchlet
