// A model spec arrives from TypeScript as a plain object tree. It is parsed on the
// JS thread into LayerSpec (so no JS value is touched later) and compiled into
// libtorch modules whose state_dict names match the equivalent PyTorch nn.Sequential.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace torchlet {

struct LayerSpec {
  std::string type;
  std::string path;  // where the layer sits in the spec, for error messages
  int64_t in = 0, out = 0, kernel = 0, stride = 0, padding = 0;
  bool bias = true;
  double p = 0, eps = 1e-5, momentum = 0.1;
  int64_t outH = 1, outW = 1;
  std::vector<LayerSpec> children;

  std::string Describe() const;
};

struct ModelSpec {
  std::string name;
  int64_t channels = 1, height = 28, width = 28;
  std::vector<double> mean, stdev;  // per channel; empty means no normalisation
  LayerSpec root;                   // a sequential
};

ModelSpec ParseModelSpec(const Napi::Object& spec);

// A Sequential whose children are registered as "0", "1", ... like nn.Sequential.
class SequentialImpl : public torch::nn::Module {
 public:
  at::Tensor forward(at::Tensor x);
  void Append(const LayerSpec& spec, torch::nn::AnyModule module);

 private:
  std::vector<torch::nn::AnyModule> layers_;
  std::vector<const LayerSpec*> specs_;
};
TORCH_MODULE(Sequential);

// Parallel branches whose outputs are concatenated on the channel dimension.
class ConcatImpl : public torch::nn::Module {
 public:
  at::Tensor forward(at::Tensor x);
  void Append(const LayerSpec& spec, torch::nn::AnyModule module);

 private:
  std::vector<torch::nn::AnyModule> branches_;
  std::vector<const LayerSpec*> specs_;  // for error messages
};
TORCH_MODULE(Concat);

// Builds the module tree. The spec must outlive the result (errors point into it).
Sequential Compile(const ModelSpec& spec);

// Runs one zero image through the net to validate every layer's shapes; returns
// the number of classes. Throws naming the first layer that rejects its input.
int64_t CheckShapes(Sequential& net, const ModelSpec& spec);

}  // namespace torchlet
