#include "state_dict.h"

#include <torch/serialize.h>

#include <map>
#include <sstream>

#include "errors.h"
#include "files.h"
#include "pickle_compat.h"

namespace torchlet {

namespace {

void Collect(const torch::nn::Module& m, const std::string& prefix, NamedTensors& out) {
  for (const auto& p : m.named_parameters(false)) out.emplace_back(prefix + p.key(), p.value());
  for (const auto& b : m.named_buffers(false)) out.emplace_back(prefix + b.key(), b.value());
  for (const auto& c : m.named_children()) Collect(*c.value(), prefix + c.key() + ".", out);
}

}  // namespace

NamedTensors StateDict(const torch::nn::Module& module) {
  NamedTensors out;
  Collect(module, "", out);
  return out;
}

void SaveStateDict(const torch::nn::Module& module, const std::string& path) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, t] : StateDict(module)) dict.insert(name, t.detach().to(torch::kCPU).contiguous().clone());
  std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  AtomicWrite(path, bytes.data(), bytes.size());
}

void LoadStateDict(torch::nn::Module& module, const std::string& path) {
  std::vector<char> bytes = ReadFile(path);
  if (bytes.empty()) throw std::runtime_error("'" + path + "' is empty, not a PyTorch state_dict");
  c10::IValue value;
  try {
    value = PickleLoad(UsesOrderedDict(bytes) ? OrderedDictsToDicts(bytes) : bytes);
  } catch (const std::exception& e) {
    std::string msg = dynamic_cast<const c10::Error*>(&e) ? TorchMessage(static_cast<const c10::Error&>(e)) : e.what();
    if (msg.find("found unknown type") != std::string::npos || msg.find("class") != std::string::npos) {
      throw std::runtime_error("'" + path + "' holds a pickled Python object, not a state_dict (save model.state_dict(), not the model): " +
                               msg);
    }
    throw std::runtime_error("'" + path + "' is not a readable PyTorch file (truncated, corrupt or another format): " + msg);
  }
  if (!value.isGenericDict()) {
    throw std::runtime_error("'" + path + "' holds a " + value.tagKind() +
                             ", not a state_dict (a dict of name -> tensor); save model.state_dict(), not the model");
  }
  std::map<std::string, at::Tensor> loaded;
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isString() || !entry.value().isTensor()) {
      throw std::runtime_error("'" + path + "' is a dict but not a state_dict: entry '" +
                               (entry.key().isString() ? entry.key().toStringRef() : std::string("<non-string key>")) +
                               "' is a " + entry.value().tagKind() + ", expected a tensor");
    }
    loaded.emplace(entry.key().toStringRef(), entry.value().toTensor());
  }
  NamedTensors expected = StateDict(module);
  std::vector<std::string> missing, unexpected, misshaped;
  std::map<std::string, bool> known;
  for (const auto& [name, t] : expected) {
    known[name] = true;
    auto it = loaded.find(name);
    if (it == loaded.end()) {
      missing.push_back(name + " " + ShapeString(t.sizes()));
    } else if (it->second.sizes() != t.sizes()) {
      misshaped.push_back(name + ": file has " + ShapeString(it->second.sizes()) + ", model needs " + ShapeString(t.sizes()));
    }
  }
  for (const auto& [name, t] : loaded) {
    if (!known.count(name)) unexpected.push_back(name + " " + ShapeString(t.sizes()));
  }
  if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
    std::ostringstream msg;
    msg << "'" << path << "' does not match this model's architecture:";
    auto list = [&](const char* title, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      msg << "\n  " << title << " (" << keys.size() << "):";
      for (const auto& k : keys) msg << "\n    " << k;
    };
    list("missing keys", missing);
    list("unexpected keys", unexpected);
    list("shape mismatches", misshaped);
    throw std::runtime_error(msg.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : expected) t.copy_(loaded.at(name));
}

}  // namespace torchlet
