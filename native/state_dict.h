// PyTorch-compatible state_dicts: name -> tensor, pickled with torch::pickle_save so
// that Python's torch.load reads them, and read back from files torch.save wrote.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace torchlet {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Parameters and buffers in PyTorch's state_dict order: a module's own parameters,
// then its own buffers, then each child's, depth first.
NamedTensors StateDict(const torch::nn::Module& module);

void SaveStateDict(const torch::nn::Module& module, const std::string& path);

// Copies a state_dict file into `module`. Refuses, listing every missing, unexpected
// and misshaped key, unless the file matches the module exactly.
void LoadStateDict(torch::nn::Module& module, const std::string& path);

}  // namespace torchlet
