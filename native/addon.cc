// The addon's entry point: registers the classes and free functions.
#include <napi.h>
#include <torch/torch.h>

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <optional>
#include <thread>

#include "augment.h"
#include "batchnorm_act.h"
#include "compute_thread.h"
#include "cpu_kernels.h"
#include "dataset.h"
#include "dropout.h"
#include "ensemble.h"
#include "errors.h"
#include "inflate.h"
#include "linear.h"
#include "model.h"
#include "trainer.h"

namespace torchlet {

namespace {

Napi::Value CudaIsAvailable(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&] { return Napi::Boolean::New(info.Env(), torch::cuda::is_available()); });
}

Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&] { return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::device_count())); });
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    int64_t n = ArgInt(info, 0, "threads");
    if (n <= 0 || n > 1024) throw RangeError("threads must be between 1 and 1024, got " + std::to_string(n));
    SetComputeThreads(static_cast<int>(n));
    return info.Env().Undefined();
  });
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ComputeThreads()); }

Napi::Object CpuKernelsObject(Napi::Env env) {
  Napi::Object r = Napi::Object::New(env);
  for (const auto& sw : kCpuKernelSwitches) r.Set(sw.name, (Kernels().*sw.field).load());
  return r;
}

// setCpuKernels({ channelsLast?, fusedBatchNorm?, cropConvs?, inferencePlan?, fusedAttention?, fusedOptimizer?, onednnGemm? }): the switches left out keep
// their value; returns all of them.
Napi::Value SetCpuKernels(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Object o = ArgObject(info, 0, "options");
    std::string known;
    for (const auto& sw : kCpuKernelSwitches) known += (known.empty() ? "" : ", ") + std::string(sw.name);
    for (const auto& key : o.GetPropertyNames().As<Napi::Array>()) {
      const std::string name = static_cast<Napi::Value>(key.second).As<Napi::String>();
      const bool is_known = std::any_of(std::begin(kCpuKernelSwitches), std::end(kCpuKernelSwitches), [&](const CpuKernelSwitch& sw) { return name == sw.name; });
      if (!is_known) throw RangeError("setCpuKernels: unknown switch '" + name + "' (known: " + known + ")");
    }
    // All read before any is set, so that a bad value changes nothing.
    bool values[std::size(kCpuKernelSwitches)];
    for (size_t i = 0; i < std::size(kCpuKernelSwitches); ++i) {
      values[i] = GetBool(o, kCpuKernelSwitches[i].name, Kernels().*kCpuKernelSwitches[i].field);
    }
    for (size_t i = 0; i < std::size(kCpuKernelSwitches); ++i) Kernels().*kCpuKernelSwitches[i].field = values[i];
    return CpuKernelsObject(info.Env());
  });
}

Napi::Value GetCpuKernels(const Napi::CallbackInfo& info) { return CpuKernelsObject(info.Env()); }

Napi::Value ParseDeviceName(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&] { return Napi::String::New(info.Env(), ParseDevice(ArgString(info, 0, "device")).str()); });
}

// A tensor's values, in logical (NCHW) order, as a new Float32Array.
Napi::Float32Array ToJs(Napi::Env env, const at::Tensor& t) {
  at::Tensor c = t.detach().contiguous();
  auto out = Napi::Float32Array::New(env, c.numel());
  std::memcpy(out.Data(), c.data_ptr<float>(), sizeof(float) * c.numel());
  return out;
}

// hashDropout(x: Float32Array, p, seed): the dropout kernel's output and the gradient of
// sum(output) with respect to x, so tests can check its statistics and its backward pass.
Napi::Value HashDropoutProbe(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw TypeError("x must be a Float32Array");
    }
    auto arr = info[0].As<Napi::Float32Array>();
    Napi::Object opts = Napi::Object::New(info.Env());
    opts.Set("p", info.Length() > 1 ? info[1] : info.Env().Undefined());
    double p = GetNumber(opts, "p");
    if (p < 0 || p >= 1) throw RangeError("p must be in [0, 1)");
    int64_t seed = ArgInt(info, 2, "seed");
    at::Tensor x = torch::from_blob(arr.Data(), {static_cast<int64_t>(arr.ElementLength())}, torch::kFloat32).clone().requires_grad_(true);
    at::Tensor y = HashDropout(x, p, static_cast<uint64_t>(seed));
    y.sum().backward();
    Napi::Object r = Napi::Object::New(info.Env());
    r.Set("output", ToJs(info.Env(), y));
    r.Set("grad", ToJs(info.Env(), x.grad()));
    return r;
  });
}

at::Tensor Float32Arg(const Napi::Object& o, const char* key, int64_t expected) {
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw TypeError(std::string(key) + " must be a Float32Array");
  }
  auto arr = v.As<Napi::Float32Array>();
  if (static_cast<int64_t>(arr.ElementLength()) != expected) {
    throw RangeError(std::string(key) + " must have " + std::to_string(expected) + " elements, got " + std::to_string(arr.ElementLength()));
  }
  return torch::from_blob(arr.Data(), {expected}, torch::kFloat32).clone();
}

// options.shape as [n, c, h, w] of positive integers.
std::vector<int64_t> ShapeArg(const Napi::Object& o) {
  Napi::Value sv = o.Get("shape");
  if (!sv.IsArray() || sv.As<Napi::Array>().Length() != 4) throw TypeError("shape must be [n, c, h, w]");
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < 4; ++i) {
    Napi::Value d = sv.As<Napi::Array>().Get(i);
    if (!d.IsNumber() || d.As<Napi::Number>().Int64Value() <= 0) throw RangeError("shape must hold positive integers");
    shape.push_back(d.As<Napi::Number>().Int64Value());
  }
  return shape;
}

// batchNormAct({ x, shape, weight, bias, upstream, relu, dropout, seed, training }): the fused
// batch-norm kernel and libtorch's own batch_norm -> relu -> dropout (same dropout seed) on
// the same channels-last input, each with its output, the gradients of sum(output * upstream)
// and the running statistics after the call, so tests can compare the two.
Napi::Value BatchNormActProbe(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Object o = ArgObject(info, 0, "options");
    std::vector<int64_t> shape = ShapeArg(o);
    const int64_t c = shape[1], numel = shape[0] * shape[1] * shape[2] * shape[3];
    // x and upstream are given in NCHW order, as everywhere in torchlet's API.
    at::Tensor x = Float32Arg(o, "x", numel).view(shape).contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor upstream = Float32Arg(o, "upstream", numel).view(shape);
    at::Tensor weight = Float32Arg(o, "weight", c), bias = Float32Arg(o, "bias", c);
    const bool relu = GetBool(o, "relu", true), training = GetBool(o, "training", true);
    const double dropout = GetNumber(o, "dropout", 0);
    if (dropout < 0 || dropout >= 1) throw RangeError("dropout must be in [0, 1)");
    const int64_t seed = GetInt(o, "seed", 0);

    auto run = [&](bool fused) {
      torch::nn::BatchNorm2d bn(c);
      {
        torch::NoGradGuard no_grad;
        bn->weight.copy_(weight);
        bn->bias.copy_(bias);
        if (Has(o, "runningMean")) bn->running_mean.copy_(Float32Arg(o, "runningMean", c));
        if (Has(o, "runningVar")) bn->running_var.copy_(Float32Arg(o, "runningVar", c));
      }
      bn->train(training);
      // Eval mode is fused only without autograd, as in evaluate and predict.
      std::optional<torch::NoGradGuard> no_grad;
      if (!training) no_grad.emplace();
      at::Tensor input = x.clone().requires_grad_(training);
      torch::manual_seed(static_cast<uint64_t>(seed));  // the dropout seed both sides draw
      at::Tensor y;
      if (fused) {
        if (!CanFuseBatchNormAct(input, *bn)) throw std::logic_error("the fused kernel refuses this input");
        y = BatchNormAct(input, *bn, relu, dropout);
      } else {
        y = bn->forward(input);
        if (relu) y = torch::relu(y);
        if (training && dropout > 0) y = HashDropout(y, dropout, NextDropoutSeed());
      }
      Napi::Object r = Napi::Object::New(env);
      r.Set("output", ToJs(env, y));
      if (training) {
        (y * upstream).sum().backward();
        r.Set("gradInput", ToJs(env, input.grad()));
        r.Set("gradWeight", ToJs(env, bn->weight.grad()));
        r.Set("gradBias", ToJs(env, bn->bias.grad()));
      }
      r.Set("runningMean", ToJs(env, bn->running_mean));
      r.Set("runningVar", ToJs(env, bn->running_var));
      return r;
    };
    Napi::Object r = Napi::Object::New(env);
    r.Set("fused", run(true));
    r.Set("reference", run(false));
    return r;
  });
}

// warpImages({ x, shape, theta, displacement?, nearest }): the CPU warp kernel and
// libtorch's grid_sample (the path other devices take) on the same images, per-image 3x3
// warps and elastic displacements [n, h, w, 2].
Napi::Value WarpProbe(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Object o = ArgObject(info, 0, "options");
    std::vector<int64_t> shape = ShapeArg(o);
    at::Tensor x = Float32Arg(o, "x", shape[0] * shape[1] * shape[2] * shape[3]).view(shape);
    at::Tensor theta = Float32Arg(o, "theta", shape[0] * 9).view({shape[0], 3, 3});
    at::Tensor displacement;
    if (Has(o, "displacement")) displacement = Float32Arg(o, "displacement", shape[0] * shape[2] * shape[3] * 2).view({shape[0], shape[2], shape[3], 2});
    const bool nearest = GetBool(o, "nearest", false);
    Napi::Object r = Napi::Object::New(env);
    r.Set("direct", ToJs(env, Warp(x, theta, displacement, nearest)));
    r.Set("gridSample", ToJs(env, WarpGridSample(x, theta, displacement, nearest)));
    return r;
  });
}

// elasticDisplacement({ noise, shape: [n, 2, h, w], alpha, sigma }): ElasticTransform's
// displacement [n, h, w, 2] from given uniform noise, for tests.
Napi::Value ElasticProbe(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Object o = ArgObject(info, 0, "options");
    std::vector<int64_t> shape = ShapeArg(o);
    if (shape[1] != 2) throw RangeError("shape must be [n, 2, height, width]: an x and a y plane per image");
    at::Tensor noise = Float32Arg(o, "noise", shape[0] * 2 * shape[2] * shape[3]).view(shape);
    return ToJs(info.Env(), ElasticDisplacement(noise, GetNumber(o, "alpha"), GetNumber(o, "sigma")));
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // glibc serves the megabyte-sized activations of every step with fresh mmap()s until its
  // adaptive threshold catches up, and hands freed memory back to the kernel: both cost a
  // page fault per 4 KiB touched (evaluation ran 6x slower for its first minute). Keep such
  // blocks on the heap and keep the heap's top, unless the user tuned malloc already.
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (!std::getenv("MALLOC_MMAP_THRESHOLD_") && !std::getenv("MALLOC_TRIM_THRESHOLD_") &&
      (tunables == nullptr || std::strstr(tunables, "glibc.malloc") == nullptr)) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
  }
  // libtorch here starts with one intra-op thread; use every core, as PyTorch does.
  unsigned cores = std::thread::hardware_concurrency();
  SetComputeThreads(cores > 0 ? static_cast<int>(cores) : 1);
  exports.Set("Model", Model::Init(env));
  exports.Set("Dataset", Dataset::Init(env));
  exports.Set("Trainer", Trainer::Init(env));
  exports.Set("cudaIsAvailable", Napi::Function::New<CudaIsAvailable>(env));
  exports.Set("cudaDeviceCount", Napi::Function::New<CudaDeviceCount>(env));
  exports.Set("setNumThreads", Napi::Function::New<SetNumThreads>(env));
  exports.Set("getNumThreads", Napi::Function::New<GetNumThreads>(env));
  exports.Set("setCpuKernels", Napi::Function::New<SetCpuKernels>(env));
  exports.Set("getCpuKernels", Napi::Function::New<GetCpuKernels>(env));
  exports.Set("resolveDevice", Napi::Function::New<ParseDeviceName>(env));
  exports.Set("oneCycleSchedule", Napi::Function::New<OneCycleSchedule>(env));
  exports.Set("lrSchedule", Napi::Function::New<LrScheduleProbe>(env));
  exports.Set("optimizerSteps", Napi::Function::New<OptimizerStepsProbe>(env));
  exports.Set("ensembleEvaluate", Napi::Function::New<EnsembleEvaluate>(env));
  exports.Set("ensembleVote", Napi::Function::New<EnsembleVote>(env));
  exports.Set("augmentBatch", Napi::Function::New<AugmentBatch>(env));
  exports.Set("hashDropout", Napi::Function::New<HashDropoutProbe>(env));
  exports.Set("batchNormAct", Napi::Function::New<BatchNormActProbe>(env));
  exports.Set("warpImages", Napi::Function::New<WarpProbe>(env));
  exports.Set("elasticDisplacement", Napi::Function::New<ElasticProbe>(env));
  exports.Set("inflateInto", Napi::Function::New<InflateInto>(env));
  exports.Set("libtorchVersion", Napi::String::New(env, TORCH_VERSION));
  exports.Set("oneDnnSgemm", Napi::Boolean::New(env, HasOneDnnSgemm()));
  return exports;
}

}  // namespace
}  // namespace torchlet

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return torchlet::Init(env, exports); }

NODE_API_MODULE(torchlet, InitAddon)
