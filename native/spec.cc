#include "spec.h"

#include <sstream>

#include "batchnorm_act.h"
#include "dropout.h"
#include "errors.h"

namespace torchlet {

namespace {

const char* kLayerTypes =
    "conv2d, batchnorm2d, dropout, dropout2d, relu, maxpool2d, avgpool2d, adaptiveavgpool2d, flatten, linear, logsoftmax, "
    "sequential, concat";

int64_t Positive(const Napi::Object& o, const char* key, const std::string& path, int64_t fallback = -1) {
  int64_t v = fallback < 0 ? GetInt(o, key) : GetInt(o, key, fallback);
  if (v <= 0) throw RangeError(path + ": '" + key + "' must be a positive integer, got " + std::to_string(v));
  return v;
}

LayerSpec ParseLayer(const Napi::Value& value, const std::string& path);

std::vector<LayerSpec> ParseList(const Napi::Object& o, const char* key, const std::string& path) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) throw TypeError(path + ": '" + key + "' must be an array of layers");
  auto arr = v.As<Napi::Array>();
  std::vector<LayerSpec> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(ParseLayer(arr.Get(i), path + "." + key + "[" + std::to_string(i) + "]"));
  return out;
}

LayerSpec ParseLayerFields(const Napi::Value& value, const std::string& path) {
  if (!value.IsObject()) throw TypeError(path + ": a layer must be an object with a 'type'");
  auto o = value.As<Napi::Object>();
  LayerSpec s;
  s.path = path;
  try {
    s.type = GetString(o, "type");
  } catch (const TypeError&) {
    throw TypeError(path + ": a layer must have a string 'type' (one of " + kLayerTypes + ")");
  }
  const std::string& t = s.type;
  if (t == "conv2d") {
    s.in = Positive(o, "in", path);
    s.out = Positive(o, "out", path);
    s.kernel = Positive(o, "kernel", path);
    s.stride = Positive(o, "stride", path, 1);
    s.padding = GetInt(o, "padding", 0);
    if (s.padding < 0) throw RangeError(path + ": 'padding' must be >= 0");
    s.bias = GetBool(o, "bias", true);
  } else if (t == "batchnorm2d") {
    s.in = Positive(o, "features", path);
    s.eps = GetNumber(o, "eps", 1e-5);
    s.momentum = GetNumber(o, "momentum", 0.1);
  } else if (t == "dropout" || t == "dropout2d") {
    s.p = GetNumber(o, "p");
    if (s.p < 0 || s.p >= 1) throw RangeError(path + ": dropout 'p' must be in [0, 1), got " + std::to_string(s.p));
  } else if (t == "maxpool2d" || t == "avgpool2d") {
    s.kernel = Positive(o, "kernel", path);
    s.stride = Positive(o, "stride", path, s.kernel);
  } else if (t == "adaptiveavgpool2d") {
    Napi::Value out = o.Get("output");
    if (out.IsArray() && out.As<Napi::Array>().Length() == 2) {
      auto arr = out.As<Napi::Object>();
      Napi::Object pair = Napi::Object::New(o.Env());
      pair.Set("h", arr.Get(uint32_t(0)));
      pair.Set("w", arr.Get(uint32_t(1)));
      s.outH = Positive(pair, "h", path);
      s.outW = Positive(pair, "w", path);
    } else {
      s.outH = s.outW = Positive(o, "output", path);
    }
  } else if (t == "linear") {
    s.in = Positive(o, "in", path);
    s.out = Positive(o, "out", path);
    s.bias = GetBool(o, "bias", true);
  } else if (t == "sequential") {
    s.children = ParseList(o, "layers", path);
  } else if (t == "concat") {
    s.children = ParseList(o, "branches", path);
    if (s.children.empty()) throw RangeError(path + ": concat needs at least one branch");
  } else if (t != "relu" && t != "flatten" && t != "logsoftmax") {
    throw RangeError(path + ": unknown layer type '" + t + "' (expected one of " + kLayerTypes + ")");
  }
  return s;
}

// The field readers (GetInt, GetBool, ...) name the key but not the layer: add the
// layer's path, unless the message already starts with it (a nested layer's does).
template <typename E>
[[noreturn]] void RethrowWithPath(const E& e, const std::string& path) {
  std::string msg = e.what();
  if (msg.rfind(path, 0) == 0) throw e;
  throw E(path + ": " + msg);
}

LayerSpec ParseLayer(const Napi::Value& value, const std::string& path) {
  try {
    return ParseLayerFields(value, path);
  } catch (const TypeError& e) {
    RethrowWithPath(e, path);
  } catch (const RangeError& e) {
    RethrowWithPath(e, path);
  }
}

std::vector<double> ParseChannelStats(const Napi::Object& input, const char* key, int64_t channels) {
  std::vector<double> out;
  if (!Has(input, key)) return out;
  Napi::Value v = input.Get(key);
  if (!v.IsArray()) throw TypeError(std::string("spec.input.") + key + " must be an array of numbers, one per channel");
  auto arr = v.As<Napi::Array>();
  if (arr.Length() != static_cast<uint32_t>(channels)) {
    throw RangeError(std::string("spec.input.") + key + " has " + std::to_string(arr.Length()) + " values for " + std::to_string(channels) +
                     " channels");
  }
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value x = arr.Get(i);
    if (!x.IsNumber()) throw TypeError(std::string("spec.input.") + key + " must hold numbers");
    out.push_back(x.As<Napi::Number>().DoubleValue());
  }
  return out;
}

torch::nn::AnyModule Build(const LayerSpec& s) {
  namespace nn = torch::nn;
  const std::string& t = s.type;
  if (t == "conv2d") {
    return nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(s.in, s.out, s.kernel).stride(s.stride).padding(s.padding).bias(s.bias)));
  }
  if (t == "batchnorm2d") return nn::AnyModule(nn::BatchNorm2d(nn::BatchNorm2dOptions(s.in).eps(s.eps).momentum(s.momentum)));
  if (t == "dropout") return nn::AnyModule(FastDropout(s.p));
  if (t == "dropout2d") return nn::AnyModule(nn::Dropout2d(nn::Dropout2dOptions(s.p)));
  if (t == "relu") return nn::AnyModule(nn::ReLU(nn::ReLUOptions(true)));
  if (t == "maxpool2d") return nn::AnyModule(nn::MaxPool2d(nn::MaxPool2dOptions(s.kernel).stride(s.stride)));
  if (t == "avgpool2d") return nn::AnyModule(nn::AvgPool2d(nn::AvgPool2dOptions(s.kernel).stride(s.stride)));
  if (t == "adaptiveavgpool2d") {
    return nn::AnyModule(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({s.outH, s.outW})));
  }
  if (t == "flatten") return nn::AnyModule(nn::Flatten());
  if (t == "linear") return nn::AnyModule(nn::Linear(nn::LinearOptions(s.in, s.out).bias(s.bias)));
  if (t == "logsoftmax") return nn::AnyModule(nn::LogSoftmax(nn::LogSoftmaxOptions(1)));
  if (t == "sequential") {
    Sequential seq;
    for (const auto& c : s.children) seq->Append(c, Build(c));
    return nn::AnyModule(seq);
  }
  Concat cat;
  for (const auto& c : s.children) cat->Append(c, Build(c));
  return nn::AnyModule(cat);
}

}  // namespace

std::string LayerSpec::Describe() const {
  std::ostringstream d;
  d << path << " (" << type;
  if (type == "conv2d") d << " " << in << "->" << out << ", kernel " << kernel << ", stride " << stride << ", padding " << padding;
  if (type == "linear") d << " " << in << "->" << out;
  if (type == "batchnorm2d") d << " " << in;
  if (type == "maxpool2d" || type == "avgpool2d") d << " kernel " << kernel << ", stride " << stride;
  d << ")";
  return d.str();
}

ModelSpec ParseModelSpec(const Napi::Object& o) {
  ModelSpec spec;
  spec.name = GetString(o, "name", "model");
  Napi::Object input = GetObject(o, "input");
  spec.channels = Positive(input, "channels", "spec.input");
  spec.height = Positive(input, "height", "spec.input");
  spec.width = Positive(input, "width", "spec.input");
  spec.mean = ParseChannelStats(input, "mean", spec.channels);
  spec.stdev = ParseChannelStats(input, "std", spec.channels);
  if (spec.mean.empty() != spec.stdev.empty()) throw RangeError("spec.input needs both 'mean' and 'std', or neither");
  for (double s : spec.stdev) {
    if (!(s > 0)) throw RangeError("spec.input.std must be positive");
  }
  spec.root.type = "sequential";
  spec.root.path = "layers";
  spec.root.children = ParseList(o, "layers", "spec");
  if (spec.root.children.empty()) throw RangeError("spec.layers is empty");
  return spec;
}

void SequentialImpl::Append(const LayerSpec& spec, torch::nn::AnyModule module) {
  register_module(std::to_string(layers_.size()), module.ptr());
  layers_.push_back(std::move(module));
  specs_.push_back(&spec);
}

at::Tensor SequentialImpl::forward(at::Tensor x) {
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerSpec& s = *specs_[i];
    // Explicit checks give the user the spec's words instead of a kernel's.
    if ((s.type == "conv2d" || s.type == "batchnorm2d") && (x.dim() != 4 || x.size(1) != s.in)) {
      throw RangeError(s.Describe() + " expects " + std::to_string(s.in) + " input channels in a 4-d input, got input of shape " +
                       ShapeString(x.sizes()));
    }
    if (s.type == "linear" && (x.dim() != 2 || x.size(1) != s.in)) {
      throw RangeError(s.Describe() + " expects input [batch, " + std::to_string(s.in) + "], got " + ShapeString(x.sizes()) +
                       (x.dim() > 2 ? " (add a flatten layer before it)" : ""));
    }
    if (s.type == "conv2d" && x.dim() == 4 &&
        (x.size(2) + 2 * s.padding < s.kernel || x.size(3) + 2 * s.padding < s.kernel)) {
      throw RangeError(s.Describe() + ": kernel " + std::to_string(s.kernel) + "x" + std::to_string(s.kernel) +
                       " is larger than its padded input " + ShapeString(x.sizes()));
    }
    if ((s.type == "maxpool2d" || s.type == "avgpool2d") && x.dim() == 4 && (x.size(2) < s.kernel || x.size(3) < s.kernel)) {
      throw RangeError(s.Describe() + ": pooling window is larger than its input " + ShapeString(x.sizes()));
    }
    try {
      // On CPU the network runs channels-last: libtorch's oneDNN convolutions train several
      // times faster on it, and batch norm (+ ReLU + dropout) runs as one fused kernel.
      if (s.type == "conv2d" && x.device().is_cpu() && x.scalar_type() == at::kFloat) x = ChannelsLast(x);
      auto* bn = s.type == "batchnorm2d" ? layers_[i].ptr()->as<torch::nn::BatchNorm2dImpl>() : nullptr;
      if (bn != nullptr && CanFuseBatchNormAct(x, *bn)) {
        size_t next = i + 1;
        const bool relu = next < layers_.size() && specs_[next]->type == "relu";
        if (relu) ++next;
        double dropout = 0;
        if (relu && next < layers_.size() && specs_[next]->type == "dropout") dropout = specs_[next++]->p;
        x = BatchNormAct(x, *bn, relu, dropout);
        i = next - 1;
        continue;
      }
      x = layers_[i].forward(x);
    } catch (const c10::Error& e) {
      throw RangeError(s.Describe() + " failed on input of shape " + ShapeString(x.sizes()) + ": " + TorchMessage(e));
    }
  }
  return x;
}

void ConcatImpl::Append(const LayerSpec& spec, torch::nn::AnyModule module) {
  register_module(std::to_string(branches_.size()), module.ptr());
  branches_.push_back(std::move(module));
  specs_.push_back(&spec);
}

at::Tensor ConcatImpl::forward(at::Tensor x) {
  std::vector<at::Tensor> outs;
  outs.reserve(branches_.size());
  for (auto& b : branches_) outs.push_back(b.forward(x));
  for (size_t i = 1; i < outs.size(); ++i) {
    if (outs[i].dim() != outs[0].dim() || outs[i].dim() < 2 ||
        outs[i].sizes().slice(2) != outs[0].sizes().slice(2) || outs[i].size(0) != outs[0].size(0)) {
      throw RangeError("concat: branch " + std::to_string(i) + " produces " + ShapeString(outs[i].sizes()) + " but branch 0 produces " +
                       ShapeString(outs[0].sizes()) + " (" + specs_[i]->path + " vs " + specs_[0]->path +
                       "); only the channel dimension may differ");
    }
  }
  return torch::cat(outs, 1);
}

Sequential Compile(const ModelSpec& spec) {
  Sequential net;
  for (const auto& c : spec.root.children) net->Append(c, Build(c));
  return net;
}

int64_t CheckShapes(Sequential& net, const ModelSpec& spec) {
  torch::NoGradGuard no_grad;
  bool was_training = net->is_training();
  net->eval();
  at::Tensor out;
  try {
    out = net->forward(torch::zeros({1, spec.channels, spec.height, spec.width}));
  } catch (...) {
    net->train(was_training);
    throw;
  }
  net->train(was_training);
  if (out.dim() != 2) {
    const LayerSpec& last = spec.root.children.back();
    throw RangeError("the model's output must be [batch, classes], got " + ShapeString(out.sizes()) + " for one input from its last layer, " +
                     last.Describe() + "; end the spec with a flatten layer (and logsoftmax)");
  }
  return out.size(1);
}

}  // namespace torchlet
