// The addon's entry point: registers the classes and free functions.
#include <napi.h>
#include <torch/torch.h>

#include <cstring>
#include <thread>

#include "dataset.h"
#include "dropout.h"
#include "errors.h"
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
    at::set_num_threads(static_cast<int>(n));
    return info.Env().Undefined();
  });
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), at::get_num_threads()); }

Napi::Value ParseDeviceName(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&] { return Napi::String::New(info.Env(), ParseDevice(ArgString(info, 0, "device")).str()); });
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
    auto out = Napi::Float32Array::New(info.Env(), arr.ElementLength());
    auto grad = Napi::Float32Array::New(info.Env(), arr.ElementLength());
    std::memcpy(out.Data(), y.detach().data_ptr<float>(), sizeof(float) * arr.ElementLength());
    std::memcpy(grad.Data(), x.grad().data_ptr<float>(), sizeof(float) * arr.ElementLength());
    Napi::Object r = Napi::Object::New(info.Env());
    r.Set("output", out);
    r.Set("grad", grad);
    return r;
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // libtorch here starts with one intra-op thread; use every core, as PyTorch does.
  unsigned cores = std::thread::hardware_concurrency();
  if (cores > 0) at::set_num_threads(static_cast<int>(cores));
  exports.Set("Model", Model::Init(env));
  exports.Set("Dataset", Dataset::Init(env));
  exports.Set("Trainer", Trainer::Init(env));
  exports.Set("cudaIsAvailable", Napi::Function::New<CudaIsAvailable>(env));
  exports.Set("cudaDeviceCount", Napi::Function::New<CudaDeviceCount>(env));
  exports.Set("setNumThreads", Napi::Function::New<SetNumThreads>(env));
  exports.Set("getNumThreads", Napi::Function::New<GetNumThreads>(env));
  exports.Set("resolveDevice", Napi::Function::New<ParseDeviceName>(env));
  exports.Set("oneCycleSchedule", Napi::Function::New<OneCycleSchedule>(env));
  exports.Set("augmentBatch", Napi::Function::New<AugmentBatch>(env));
  exports.Set("hashDropout", Napi::Function::New<HashDropoutProbe>(env));
  exports.Set("libtorchVersion", Napi::String::New(env, TORCH_VERSION));
  return exports;
}

}  // namespace
}  // namespace torchlet

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return torchlet::Init(env, exports); }

NODE_API_MODULE(torchlet, InitAddon)
