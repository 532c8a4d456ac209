// A model spec arrives from TypeScript as a plain object tree. It is parsed on the
// JS thread into LayerSpec (so no JS value is touched later) and compiled into
// libtorch modules whose state_dict names follow the spec's module tree: a layer's
// `name`, or else its index among the modules of its parent, like nn.Sequential.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "inference.h"

namespace torchlet {

struct LayerSpec {
  std::string type;
  std::string path;  // where the layer sits in the spec, for error messages
  std::string name;  // its key in the parent module; empty: the next free index
  bool inlined = false;  // a block whose layers register on the enclosing module
  int64_t in = 0, out = 0, groups = 1;
  // [height, width], as nn.Conv2d keeps them; a square pooling window has both equal.
  std::array<int64_t, 2> kernel{0, 0}, stride{0, 0}, padding{0, 0}, dilation{1, 1};
  bool bias = true, ceil = false;
  double p = 0, eps = 1e-5, momentum = 0.1;
  bool hasMomentum = true;  // false: BatchNorm's cumulative average (momentum null)
  int64_t outH = 1, outW = 1;
  int64_t heads = 0, feedforward = 0, tokens = 0;
  std::string activation;  // transformer encoder layer: relu or gelu
  bool normFirst = false;
  // Set by ParseModelSpec, not by the user: only token 0 of this transformer encoder layer's
  // output is ever read (a select of the class token follows, with only token-wise layers
  // between), so it computes that token's row alone.
  bool firstTokenOnly = false;
  std::string mode;  // stochastic depth: row or batch
  std::vector<int64_t> dims;  // flatten [start, end], transpose [a, b], select [dim, index], reshape (per-sample shape)
  std::vector<LayerSpec> children;
  std::vector<LayerSpec> shortcut;  // residual: none (identity) or one layer

  std::string Describe() const;
};

struct ModelSpec {
  std::string name;
  int64_t channels = 1, height = 28, width = 28;
  std::vector<double> mean, stdev;  // per channel; empty means no normalisation
  LayerSpec root;                   // a sequential
};

ModelSpec ParseModelSpec(const Napi::Object& spec);

// Layers run in order. Which module each one is registered on (this one, or for an inline
// block the enclosing one) was decided when the tree was built.
class SequentialImpl : public torch::nn::Module {
 public:
  // Under InferenceMode on the CPU (evaluate, predict), an eval-mode pass runs through a plan
  // with each batch norm folded into its conv (inference.h), made on first use and again
  // whenever the weights change; otherwise, and for the shape check at construction, layer
  // by layer with the spec's own error messages.
  at::Tensor forward(at::Tensor x);
  void Add(const LayerSpec& spec, torch::nn::AnyModule module);

 private:
  at::Tensor Layers(at::Tensor x);
  std::shared_ptr<const InferencePlan> Plan();

  std::vector<torch::nn::AnyModule> layers_;
  std::vector<const LayerSpec*> specs_;
  std::mutex plan_mutex_;  // passes may run on several worker threads at once
  std::shared_ptr<const InferencePlan> plan_;
  bool planned_ = false;
};
TORCH_MODULE(Sequential);

// Parallel branches whose outputs are concatenated on the channel dimension.
class ConcatImpl : public torch::nn::Module {
 public:
  at::Tensor forward(at::Tensor x);
  void Add(const LayerSpec& spec, torch::nn::AnyModule module);

 private:
  std::vector<torch::nn::AnyModule> branches_;
  std::vector<const LayerSpec*> specs_;  // for error messages
};
TORCH_MODULE(Concat);

// Builds the module tree. The spec must outlive the result (errors point into it).
Sequential Compile(const ModelSpec& spec);

struct ShapeCheck {
  int64_t classes = 0;
  // The most elements that any layer reads for one image (the activations' peak width).
  int64_t largest_activation = 0;
};

// Runs one zero image through the net to validate every layer's shapes. Throws naming the
// first layer that rejects its input.
ShapeCheck CheckShapes(Sequential& net, const ModelSpec& spec);

}  // namespace torchlet
