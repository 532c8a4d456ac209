#include "spec.h"

#include <cmath>
#include <regex>
#include <sstream>

#include "batchnorm_act.h"
#include "conv_crop.h"
#include "cpu_kernels.h"
#include "dropout.h"
#include "errors.h"
#include "layers.h"

namespace torchlet {

namespace {

const char* kLayerTypes =
    "conv2d, batchnorm2d, batchnorm1d, layernorm, dropout, dropout2d, stochasticdepth, relu, relu6, hardswish, hardsigmoid, silu, gelu, "
    "sigmoid, maxpool2d, avgpool2d, adaptiveavgpool2d, flatten, reshape, transpose, select, linear, logsoftmax, token, positionembedding, "
    "multiheadattention, transformerencoderlayer, sequential, concat, residual, scale";

int64_t Positive(const Napi::Object& o, const char* key, const std::string& path, int64_t fallback = -1) {
  int64_t v = fallback < 0 ? GetInt(o, key) : GetInt(o, key, fallback);
  if (v <= 0) throw RangeError(path + ": '" + key + "' must be a positive integer, got " + std::to_string(v));
  return v;
}

double Probability(const Napi::Object& o, const char* key, const std::string& path, double fallback = -1) {
  double p = fallback < 0 ? GetNumber(o, key) : GetNumber(o, key, fallback);
  if (!(p >= 0 && p < 1)) throw RangeError(path + ": '" + key + "' must be in [0, 1), got " + std::to_string(p));
  return p;
}

std::vector<int64_t> IntList(const Napi::Object& o, const char* key, const std::string& path) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) throw TypeError(path + ": '" + key + "' must be an array of integers");
  auto arr = v.As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value x = arr.Get(i);
    double d = x.IsNumber() ? x.As<Napi::Number>().DoubleValue() : 0.5;
    if (d != std::floor(d) || std::abs(d) > 1e15) throw TypeError(path + ": '" + key + "' must hold integers");
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

// A spatial size as nn.Conv2d takes it: one integer for both dimensions, or [height, width].
// `least` is the smallest value allowed (1 for a kernel, stride or dilation, 0 for padding).
std::array<int64_t, 2> IntPair(const Napi::Object& o, const char* key, const std::string& path, int64_t least, int64_t fallback = -1) {
  const std::string expected =
      path + ": '" + key + "' must be " + (least > 0 ? "a positive integer" : "an integer >= 0") + " or a [height, width] pair of them, got ";
  if (!Has(o, key)) {
    if (fallback < 0) throw TypeError(expected + "nothing");
    return {fallback, fallback};
  }
  Napi::Value v = o.Get(key);
  auto show = [](const Napi::Value& x) -> std::string {
    if (x.IsNumber()) {
      std::ostringstream n;
      n << x.As<Napi::Number>().DoubleValue();
      return n.str();
    }
    return x.IsString() ? "'" + x.As<Napi::String>().Utf8Value() + "'" : x.ToString().Utf8Value();
  };
  std::vector<Napi::Value> items;
  std::string shown;
  if (v.IsArray()) {
    auto arr = v.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      items.push_back(arr.Get(i));
      shown += (i ? ", " : "") + show(items.back());
    }
    shown = "[" + shown + "]";
  } else {
    items = {v, v};
    shown = show(v);
  }
  for (const auto& x : items) {
    if (!x.IsNumber()) throw TypeError(expected + shown);
  }
  if (items.size() != 2) throw RangeError(expected + "an array of " + std::to_string(items.size()));
  std::array<int64_t, 2> out{};
  for (size_t i = 0; i < 2; ++i) {
    double d = items[i].As<Napi::Number>().DoubleValue();
    if (d != std::floor(d) || d < least || d > 1e9) throw RangeError(expected + shown);
    out[i] = static_cast<int64_t>(d);
  }
  return out;
}

// One value when both dimensions agree (as a square spec gives it), else [height, width].
std::string PairString(const std::array<int64_t, 2>& v) {
  return v[0] == v[1] ? std::to_string(v[0]) : "[" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + "]";
}

bool IsBlock(const std::string& t) { return t == "sequential" || t == "concat" || t == "residual" || t == "scale"; }

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
  if (Has(o, "name")) {
    s.name = GetString(o, "name");
    static const std::regex valid("^[A-Za-z0-9_]+$");
    if (!std::regex_match(s.name, valid)) {
      throw RangeError(path + ": name '" + s.name + "' must be letters, digits and underscores (it becomes a state_dict key part)");
    }
  }
  s.inlined = GetBool(o, "inline", false);
  if (s.inlined && !IsBlock(t)) throw RangeError(path + ": only sequential, concat, residual and scale blocks can be inline");
  if (s.inlined && !s.name.empty()) throw RangeError(path + ": an inline block registers no module of its own, so it takes no name");
  if (t == "conv2d") {
    s.in = Positive(o, "in", path);
    s.out = Positive(o, "out", path);
    s.kernel = IntPair(o, "kernel", path, 1);
    s.stride = IntPair(o, "stride", path, 1, 1);
    // Any padding, as nn.Conv2d allows: a dilated 3x3 keeps its size with padding 2.
    s.padding = IntPair(o, "padding", path, 0, 0);
    s.groups = Positive(o, "groups", path, 1);
    s.dilation = IntPair(o, "dilation", path, 1, 1);
    if (s.in % s.groups != 0 || s.out % s.groups != 0) {
      throw RangeError(path + ": 'groups' " + std::to_string(s.groups) + " must divide both 'in' (" + std::to_string(s.in) + ") and 'out' (" +
                       std::to_string(s.out) + ")");
    }
    s.bias = GetBool(o, "bias", true);
  } else if (t == "batchnorm2d" || t == "batchnorm1d") {
    s.in = Positive(o, "features", path);
    s.eps = GetNumber(o, "eps", 1e-5);
    if (!(s.eps > 0)) throw RangeError(path + ": 'eps' must be positive");
    if (Has(o, "momentum") && o.Get("momentum").IsNull()) {
      s.hasMomentum = false;
    } else {
      s.momentum = GetNumber(o, "momentum", 0.1);
      if (!(s.momentum >= 0 && s.momentum <= 1)) throw RangeError(path + ": 'momentum' must be in [0, 1] (or null for a cumulative average)");
    }
  } else if (t == "layernorm") {
    s.in = Positive(o, "features", path);
    s.eps = GetNumber(o, "eps", 1e-5);
    if (!(s.eps > 0)) throw RangeError(path + ": 'eps' must be positive");
  } else if (t == "dropout" || t == "dropout2d") {
    s.p = GetNumber(o, "p");
    if (s.p < 0 || s.p >= 1) throw RangeError(path + ": dropout 'p' must be in [0, 1), got " + std::to_string(s.p));
  } else if (t == "stochasticdepth") {
    s.p = GetNumber(o, "p");
    if (!(s.p >= 0 && s.p <= 1)) throw RangeError(path + ": stochastic depth 'p' must be in [0, 1], got " + std::to_string(s.p));
    s.mode = GetString(o, "mode", "row");
    if (s.mode != "row" && s.mode != "batch") throw RangeError(path + ": stochastic depth 'mode' must be 'row' or 'batch', got '" + s.mode + "'");
  } else if (t == "maxpool2d" || t == "avgpool2d") {
    s.kernel = IntPair(o, "kernel", path, 1);
    s.stride = Has(o, "stride") ? IntPair(o, "stride", path, 1) : s.kernel;
    s.padding = IntPair(o, "padding", path, 0, 0);
    if (2 * s.padding[0] > s.kernel[0] || 2 * s.padding[1] > s.kernel[1]) {
      throw RangeError(path + ": 'padding' must be between 0 and half the kernel, got padding " + PairString(s.padding) + " for kernel " +
                       PairString(s.kernel));
    }
    s.ceil = GetBool(o, "ceil", false);
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
  } else if (t == "flatten") {
    s.dims = {GetInt(o, "start", 1), GetInt(o, "end", -1)};
    if (s.dims[0] == 0) throw RangeError(path + ": flatten 'start' must not be 0 (the batch dimension)");
  } else if (t == "reshape") {
    s.dims = IntList(o, "shape", path);
    if (s.dims.empty()) throw RangeError(path + ": reshape 'shape' (per sample, without the batch) is empty");
    int64_t inferred = 0;
    for (int64_t d : s.dims) {
      if (d == -1) ++inferred;
      else if (d <= 0) throw RangeError(path + ": reshape 'shape' entries must be positive, or -1 once");
    }
    if (inferred > 1) throw RangeError(path + ": reshape 'shape' may hold -1 only once");
  } else if (t == "transpose") {
    s.dims = IntList(o, "dims", path);
    if (s.dims.size() != 2 || s.dims[0] == 0 || s.dims[1] == 0) {
      throw RangeError(path + ": transpose 'dims' must be two dimensions other than the batch's (0)");
    }
  } else if (t == "select") {
    s.dims = {GetInt(o, "dim"), GetInt(o, "index")};
    if (s.dims[0] == 0) throw RangeError(path + ": select 'dim' must not be 0 (the batch dimension)");
  } else if (t == "linear") {
    s.in = Positive(o, "in", path);
    s.out = Positive(o, "out", path);
    s.bias = GetBool(o, "bias", true);
  } else if (t == "token") {
    s.in = Positive(o, "dim", path);
    if (s.name.empty()) s.name = "class_token";
  } else if (t == "positionembedding") {
    s.tokens = Positive(o, "tokens", path);
    s.in = Positive(o, "dim", path);
    if (s.name.empty()) s.name = "pos_embedding";
  } else if (t == "multiheadattention" || t == "transformerencoderlayer") {
    s.in = Positive(o, "dim", path);
    s.heads = Positive(o, "heads", path);
    if (s.in % s.heads != 0) {
      throw RangeError(path + ": 'dim' " + std::to_string(s.in) + " must be divisible by 'heads' " + std::to_string(s.heads));
    }
    s.p = Probability(o, "dropout", path, 0);
    s.bias = GetBool(o, "bias", true);
    if (t == "transformerencoderlayer") {
      s.feedforward = Positive(o, "feedforward", path);
      s.activation = GetString(o, "activation", "relu");
      if (s.activation != "relu" && s.activation != "gelu") throw RangeError(path + ": 'activation' must be 'relu' or 'gelu'");
      s.normFirst = GetBool(o, "normFirst", false);
      s.eps = GetNumber(o, "eps", 1e-5);
      if (!s.bias) throw RangeError(path + ": a transformer encoder layer always has biases");
    }
  } else if (t == "sequential") {
    s.children = ParseList(o, "layers", path);
  } else if (t == "concat") {
    s.children = ParseList(o, "branches", path);
    if (s.children.empty()) throw RangeError(path + ": concat needs at least one branch");
  } else if (t == "residual" || t == "scale") {
    s.children = ParseList(o, "layers", path);
    if (s.children.empty()) throw RangeError(path + ": " + t + " needs at least one layer");
    if (t == "residual" && Has(o, "shortcut") && !o.Get("shortcut").IsUndefined()) {
      s.shortcut.push_back(ParseLayer(o.Get("shortcut"), path + ".shortcut"));
    }
  } else if (t != "relu" && t != "relu6" && t != "hardswish" && t != "hardsigmoid" && t != "silu" && t != "gelu" && t != "sigmoid" &&
             t != "logsoftmax") {
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

// A free name on `owner`: the layer's own, or the number of modules registered there so
// far (nn.Sequential's index when no block is inline).
std::string KeyOn(torch::nn::Module& owner, const LayerSpec& s) {
  std::string key = s.name.empty() ? std::to_string(owner.children().size()) : s.name;
  if (owner.named_children().contains(key) || owner.named_parameters(false).contains(key) || owner.named_buffers(false).contains(key)) {
    throw RangeError(s.path + ": the name '" + key + "' is already taken in its module; give the layer another name");
  }
  return key;
}

std::shared_ptr<torch::nn::Module> Register(torch::nn::Module& owner, const LayerSpec& s, std::shared_ptr<torch::nn::Module> m) {
  owner.register_module(KeyOn(owner, s), m);
  return m;
}

torch::nn::AnyModule Build(const LayerSpec& s, torch::nn::Module& owner);

// The layers of a block, registered on `owner`, run in order by the returned Sequential.
Sequential Chain(const std::vector<LayerSpec>& layers, torch::nn::Module& owner) {
  Sequential seq;
  for (const auto& c : layers) seq->Add(c, Build(c, owner));
  return seq;
}

// Builds the layer and registers what it owns on `owner` (an inline block registers its
// layers there; a parameter layer its tensor). Returns what the forward pass calls.
torch::nn::AnyModule Build(const LayerSpec& s, torch::nn::Module& owner) {
  namespace nn = torch::nn;
  const std::string& t = s.type;
  auto leaf = [&](auto module) {
    Register(owner, s, module.ptr());
    return nn::AnyModule(module);
  };
  if (t == "conv2d") {
    return leaf(nn::Conv2d(nn::Conv2dOptions(s.in, s.out, s.kernel)
                               .stride(s.stride)
                               .padding(torch::ExpandingArray<2>(s.padding))
                               .groups(s.groups)
                               .dilation(s.dilation)
                               .bias(s.bias)));
  }
  auto momentum = [&]() -> c10::optional<double> { return s.hasMomentum ? c10::optional<double>(s.momentum) : c10::nullopt; };
  if (t == "batchnorm2d") return leaf(nn::BatchNorm2d(nn::BatchNorm2dOptions(s.in).eps(s.eps).momentum(momentum())));
  if (t == "batchnorm1d") return leaf(nn::BatchNorm1d(nn::BatchNorm1dOptions(s.in).eps(s.eps).momentum(momentum())));
  if (t == "layernorm") return leaf(nn::LayerNorm(nn::LayerNormOptions({s.in}).eps(s.eps)));
  if (t == "dropout") return leaf(FastDropout(s.p));
  if (t == "dropout2d") return leaf(nn::Dropout2d(nn::Dropout2dOptions(s.p)));
  if (t == "stochasticdepth") return leaf(StochasticDepth(s.p, s.mode == "row"));
  if (t == "relu") return leaf(nn::ReLU(nn::ReLUOptions(true)));
  if (t == "relu6") return leaf(Activation(Act::kRelu6));
  if (t == "hardswish") return leaf(Activation(Act::kHardswish));
  if (t == "hardsigmoid") return leaf(Activation(Act::kHardsigmoid));
  if (t == "silu") return leaf(Activation(Act::kSilu));
  if (t == "gelu") return leaf(Activation(Act::kGelu));
  if (t == "sigmoid") return leaf(Activation(Act::kSigmoid));
  if (t == "maxpool2d") return leaf(nn::MaxPool2d(nn::MaxPool2dOptions(s.kernel).stride(s.stride).padding(s.padding).ceil_mode(s.ceil)));
  if (t == "avgpool2d") return leaf(nn::AvgPool2d(nn::AvgPool2dOptions(s.kernel).stride(s.stride).padding(s.padding).ceil_mode(s.ceil)));
  if (t == "adaptiveavgpool2d") return leaf(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({s.outH, s.outW})));
  if (t == "flatten") return leaf(nn::Flatten(nn::FlattenOptions().start_dim(s.dims[0]).end_dim(s.dims[1])));
  if (t == "reshape") return leaf(Reshape(s.dims));
  if (t == "transpose") return leaf(Transpose(s.dims[0], s.dims[1]));
  if (t == "select") return leaf(Select(s.dims[0], s.dims[1]));
  if (t == "linear") return leaf(FastLinear(nn::LinearOptions(s.in, s.out).bias(s.bias)));
  if (t == "logsoftmax") return leaf(nn::LogSoftmax(nn::LogSoftmaxOptions(1)));
  if (t == "multiheadattention") return leaf(MultiheadAttention(s.in, s.heads, s.p, s.bias));
  if (t == "transformerencoderlayer") return leaf(TransformerEncoderLayer(s));
  if (t == "token") {
    // torchvision's VisionTransformer starts its class token at zero.
    return nn::AnyModule(Token(owner.register_parameter(KeyOn(owner, s), torch::zeros({1, 1, s.in}))));
  }
  if (t == "positionembedding") {
    at::Tensor e = owner.register_parameter(KeyOn(owner, s), torch::empty({1, s.tokens, s.in}));
    {
      torch::NoGradGuard no_grad;
      e.normal_(0, 0.02);  // as torchvision's VisionTransformer
    }
    return nn::AnyModule(PositionEmbedding(s, e));
  }
  // Blocks: an inline one registers its layers on `owner`, any other on itself.
  std::shared_ptr<nn::Module> self;
  nn::Module* target = &owner;
  nn::AnyModule result;
  if (t == "sequential") {
    Sequential seq;
    if (!s.inlined) target = seq.get();
    for (const auto& c : s.children) seq->Add(c, Build(c, *target));
    self = seq.ptr();
    result = nn::AnyModule(seq);
  } else if (t == "concat") {
    Concat cat;
    if (!s.inlined) target = cat.get();
    for (const auto& c : s.children) cat->Add(c, Build(c, *target));
    self = cat.ptr();
    result = nn::AnyModule(cat);
  } else if (t == "residual") {
    // The main path's layers and the shortcut belong to the residual block itself
    // (torchvision's BasicBlock: conv1, bn1, ..., downsample).
    Residual block(s);
    if (!s.inlined) target = block.get();
    Sequential main = Chain(s.children, *target);
    block->Wire(main, s.shortcut.empty() ? nn::AnyModule() : Build(s.shortcut[0], *target));
    self = block.ptr();
    result = nn::AnyModule(block);
  } else if (t == "scale") {
    Scale block(s);
    if (!s.inlined) target = block.get();
    block->Wire(Chain(s.children, *target));
    self = block.ptr();
    result = nn::AnyModule(block);
  } else {
    throw RangeError(s.path + ": unknown layer type '" + t + "'");
  }
  if (!s.inlined) Register(owner, s, self);
  return result;
}

}  // namespace

std::string LayerSpec::Describe() const {
  std::ostringstream d;
  d << path;
  if (!name.empty()) d << " '" << name << "'";
  d << " (" << type;
  if (type == "conv2d") {
    d << " " << in << "->" << out << ", kernel " << PairString(kernel) << ", stride " << PairString(stride) << ", padding "
      << PairString(padding);
    if (dilation[0] != 1 || dilation[1] != 1) d << ", dilation " << PairString(dilation);
    if (groups != 1) d << ", groups " << groups;
  }
  if (type == "linear") d << " " << in << "->" << out;
  if (type == "batchnorm2d" || type == "batchnorm1d" || type == "layernorm") d << " " << in;
  if (type == "multiheadattention" || type == "transformerencoderlayer") d << " dim " << in << ", " << heads << " heads";
  if (type == "maxpool2d" || type == "avgpool2d") d << " kernel " << PairString(kernel) << ", stride " << PairString(stride);
  d << ")";
  return d.str();
}

namespace {

// Looks back from seq[end - 1] across token-wise layers (layer norm, dropout) and into
// sequential blocks for a transformer encoder layer, and marks it firstTokenOnly.
void MarkFirstTokenOnly(std::vector<LayerSpec>& seq, size_t end) {
  for (size_t k = end; k-- > 0;) {
    LayerSpec& s = seq[k];
    if (s.type == "transformerencoderlayer") {
      s.firstTokenOnly = true;
      return;
    }
    if (s.type == "sequential") return MarkFirstTokenOnly(s.children, s.children.size());
    if (s.type != "layernorm" && s.type != "dropout") return;
  }
}

// A ViT's head reads only the class token: the last encoder layer before the select of
// token 0 need not compute the other tokens' rows (a sixth of the ViT's evaluation).
void MarkClassTokenReads(std::vector<LayerSpec>& seq) {
  for (size_t j = 0; j < seq.size(); ++j) {
    if (seq[j].type == "select" && seq[j].dims.size() == 2 && seq[j].dims[0] == 1 && seq[j].dims[1] == 0) MarkFirstTokenOnly(seq, j);
  }
}

}  // namespace

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
  MarkClassTokenReads(spec.root.children);
  return spec;
}

void SequentialImpl::Add(const LayerSpec& spec, torch::nn::AnyModule module) {
  layers_.push_back(std::move(module));
  specs_.push_back(&spec);
}

std::shared_ptr<const InferencePlan> SequentialImpl::Plan() {
  std::lock_guard<std::mutex> lock(plan_mutex_);
  if (!planned_ || (plan_ && !plan_->Current())) {
    try {
      plan_ = MakeInferencePlan(layers_, specs_);
    } catch (const c10::Error&) {
      plan_ = nullptr;  // the layers as they are: slower, never wrong
    }
    planned_ = true;
  }
  return plan_;
}

at::Tensor SequentialImpl::forward(at::Tensor x) {
  if (!is_training() && c10::InferenceMode::is_enabled() && Kernels().inference_plan && x.device().is_cpu() && x.scalar_type() == at::kFloat) {
    if (auto plan = Plan()) {
      try {
        return plan->Run(x, layers_);
      } catch (const c10::Error&) {
        // The plan skips the layer-by-layer checks; rerunning the layers turns a kernel's
        // error into one that names the spec's layer (or gives the result, if only the plan failed).
      }
    }
  }
  return Layers(std::move(x));
}

namespace {
// Set by CheckShapes while its one-image pass runs: the most elements any layer reads.
thread_local int64_t* largest_activation = nullptr;
}  // namespace

at::Tensor SequentialImpl::Layers(at::Tensor x) {
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerSpec& s = *specs_[i];
    if (largest_activation != nullptr) *largest_activation = std::max(*largest_activation, x.numel());
    // Explicit checks give the user the spec's words instead of a kernel's.
    if ((s.type == "conv2d" || s.type == "batchnorm2d") && (x.dim() != 4 || x.size(1) != s.in)) {
      throw RangeError(s.Describe() + " expects " + std::to_string(s.in) + " input channels in a 4-d input, got input of shape " +
                       ShapeString(x.sizes()));
    }
    if (s.type == "batchnorm1d" && (x.dim() < 2 || x.dim() > 3 || x.size(1) != s.in)) {
      throw RangeError(s.Describe() + " expects input [batch, " + std::to_string(s.in) + "] or [batch, " + std::to_string(s.in) +
                       ", length], got " + ShapeString(x.sizes()));
    }
    if ((s.type == "linear" || s.type == "layernorm") && (x.dim() < 2 || x.size(-1) != s.in)) {
      throw RangeError(s.Describe() + " expects input [batch, " + (s.type == "layernorm" ? "..., " : "") + std::to_string(s.in) + "], got " +
                       ShapeString(x.sizes()) +
                       (x.dim() > 2 && s.type == "linear" ? " (add a flatten layer before it)" : ""));
    }
    if (s.type == "conv2d" && x.dim() == 4) {
      // Per dimension: a 3x1 kernel fits an input one pixel wide.
      const int64_t reachH = s.dilation[0] * (s.kernel[0] - 1) + 1, reachW = s.dilation[1] * (s.kernel[1] - 1) + 1;
      const int64_t paddedH = x.size(2) + 2 * s.padding[0], paddedW = x.size(3) + 2 * s.padding[1];
      if (paddedH < reachH || paddedW < reachW) {
        const bool dilated = s.dilation[0] != 1 || s.dilation[1] != 1;
        throw RangeError(s.Describe() + ": kernel " + std::to_string(s.kernel[0]) + "x" + std::to_string(s.kernel[1]) +
                         (dilated ? " (dilated " + std::to_string(reachH) + "x" + std::to_string(reachW) + ")" : "") +
                         " is larger than its padded input " + ShapeString(x.sizes()) + " (padded " + std::to_string(paddedH) + "x" +
                         std::to_string(paddedW) + ")");
      }
    }
    if ((s.type == "maxpool2d" || s.type == "avgpool2d") && !s.ceil && x.dim() == 4 &&
        (x.size(2) + 2 * s.padding[0] < s.kernel[0] || x.size(3) + 2 * s.padding[1] < s.kernel[1])) {
      throw RangeError(s.Describe() + ": pooling window is larger than its input " + ShapeString(x.sizes()));
    }
    try {
      // On CPU the network runs channels-last: libtorch's oneDNN convolutions train several
      // times faster on it, and batch norm (+ ReLU + dropout) runs as one fused kernel.
      const bool channels_last = Kernels().channels_last;
      if (channels_last && s.type == "conv2d" && x.device().is_cpu() && x.scalar_type() == at::kFloat) x = ChannelsLast(x);
      auto* bn = s.type == "batchnorm2d" ? layers_[i].ptr()->as<torch::nn::BatchNorm2dImpl>() : nullptr;
      // In training, a batch norm without a ReLU after it runs unfused: fused there, the test's
      // seed of resnet34 took a far step (3e-3 off the exact one). At batch 8 such deep networks
      // amplify any rounding difference; PyTorch's own channels-last step is as far on other
      // seeds (README, "One SGD step of a deep residual network").
      const bool relu_next = i + 1 < layers_.size() && specs_[i + 1]->type == "relu";
      if (channels_last && Kernels().fused_batchnorm && bn != nullptr && (relu_next || !bn->is_training()) && CanFuseBatchNormAct(x, *bn)) {
        size_t next = i + 1;
        const bool relu = relu_next;
        if (relu) ++next;
        double dropout = 0;
        if (relu && next < layers_.size() && specs_[next]->type == "dropout") dropout = specs_[next++]->p;
        x = BatchNormAct(x, *bn, relu, dropout);
        i = next - 1;
        continue;
      }
      if (s.type == "flatten" && s.dims[0] == 1 && (s.dims[1] == -1 || s.dims[1] == 3) && x.dim() == 4 && x.requires_grad() &&
          !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast)) {
        x = FlattenChannelsLast(x);
        continue;
      }
      if (s.type == "conv2d" && Kernels().crop_convs) {
        at::Tensor y = CroppedConv(x, *layers_[i].ptr()->as<torch::nn::Conv2dImpl>());
        if (y.defined()) {
          x = y;
          continue;
        }
      }
      x = layers_[i].forward(x);
    } catch (const c10::Error& e) {
      throw RangeError(s.Describe() + " failed on input of shape " + ShapeString(x.sizes()) + ": " + TorchMessage(e));
    }
  }
  return x;
}

void ConcatImpl::Add(const LayerSpec& spec, torch::nn::AnyModule module) {
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
  for (const auto& c : spec.root.children) net->Add(c, Build(c, *net));
  return net;
}

ShapeCheck CheckShapes(Sequential& net, const ModelSpec& spec) {
  torch::NoGradGuard no_grad;
  bool was_training = net->is_training();
  net->eval();
  at::Tensor out;
  ShapeCheck r;
  largest_activation = &r.largest_activation;
  try {
    out = net->forward(torch::zeros({1, spec.channels, spec.height, spec.width}));
  } catch (...) {
    largest_activation = nullptr;
    net->train(was_training);
    throw;
  }
  largest_activation = nullptr;
  net->train(was_training);
  if (out.dim() != 2) {
    const LayerSpec& last = spec.root.children.back();
    throw RangeError("the model's output must be [batch, classes], got " + ShapeString(out.sizes()) + " for one input from its last layer, " +
                     last.Describe() + "; end the spec with a flatten layer (and logsoftmax)");
  }
  r.classes = out.size(1);
  return r;
}

}  // namespace torchlet
