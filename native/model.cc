#include "model.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#include <chrono>
#include <cstring>
#include <regex>

#include "compute_thread.h"
#include "dataset.h"
#include "errors.h"
#include "state_dict.h"

// Exported by libtorch (caffe2/utils/threadpool/pthreadpool-cpp.h, which it does not install):
// while enabled on a thread, XNNPACK kernels called from it run on it alone.
namespace caffe2 {
class _NoPThreadPoolGuard {
 public:
  static bool is_enabled();
  static void set_enabled(bool enabled);
};
}  // namespace caffe2

namespace torchlet {

torch::Device ParseDevice(const std::string& name) {
  static const std::regex pattern("^(cpu|cuda|auto)(:([0-9]+))?$");
  std::smatch m;
  if (!std::regex_match(name, m, pattern) || (m[1] != "cuda" && m[2].matched)) {
    throw RangeError("device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got '" + name + "'");
  }
  if (m[1] == "cpu") return torch::Device(torch::kCPU);
  if (m[1] == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (!torch::cuda::is_available()) {
    throw RangeError("device '" + name + "' was asked for, but this libtorch " +
                     (torch::cuda::device_count() == 0 ? std::string("sees no CUDA device") : std::string("cannot use CUDA")) +
                     " (is it a CUDA build of libtorch, with a driver?); use 'cpu' or 'auto'");
  }
  int64_t index = m[2].matched ? std::stoll(m[3]) : 0;
  if (index >= static_cast<int64_t>(torch::cuda::device_count())) {
    throw RangeError("device '" + name + "' does not exist: " + std::to_string(torch::cuda::device_count()) + " CUDA device(s) visible");
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

at::Tensor Standardise(at::Tensor x, const ModelSpec& spec) {
  if (spec.mean.empty()) return x;
  if (spec.mean.size() == 1) return x.sub_(spec.mean[0]).div_(spec.stdev[0]);
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(x.device());
  auto mean = torch::tensor(std::vector<float>(spec.mean.begin(), spec.mean.end()), opts).view({1, -1, 1, 1});
  auto stdev = torch::tensor(std::vector<float>(spec.stdev.begin(), spec.stdev.end()), opts).view({1, -1, 1, 1});
  return x.sub_(mean).div_(stdev);
}

at::Tensor Normalise(const at::Tensor& pixels, const ModelSpec& spec) {
  return Standardise(pixels.to(torch::kFloat32).div_(255.0), spec);
}

Napi::Function Model::Init(Napi::Env env) {
  return DefineClass(env, "Model",
                     {
                         InstanceMethod<&Model::NumParams>("numParams"),
                         InstanceMethod<&Model::StateShapes>("stateShapes"),
                         InstanceMethod<&Model::StateTensors>("stateTensors"),
                         InstanceMethod<&Model::Save>("save"),
                         InstanceMethod<&Model::Load>("load"),
                         InstanceMethod<&Model::Predict>("predict"),
                         InstanceMethod<&Model::PredictAsync>("predictAsync"),
                         InstanceMethod<&Model::Evaluate>("evaluate"),
                         InstanceMethod<&Model::To>("to"),
                         InstanceAccessor<&Model::GetDevice>("device"),
                         InstanceMethod<&Model::Dispose>("dispose"),
                         InstanceAccessor<&Model::IsDisposed>("disposed"),
                     });
}

Model* Model::FromJs(const Napi::Value& v, const char* what) {
  if (!v.IsObject()) throw TypeError(std::string(what) + " must be a native Model");
  // ObjectWrap::Unwrap cannot tell a Model from any other object, so check the brand.
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value brand = o.Get("__torchletModel");
  if (!brand.IsBoolean()) throw TypeError(std::string(what) + " must be a native Model");
  Model* m = Napi::ObjectWrap<Model>::Unwrap(o);
  if (m->net_.is_empty()) throw Napi::Error::New(v.Env(), std::string(what) + " has been disposed");
  return m;
}

Model::Model(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Model>(info) {
  Guard(info.Env(), [&] {
    Napi::Object spec = ArgObject(info, 0, "spec");
    Napi::Object opts = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(info.Env());
    spec_ = std::make_unique<ModelSpec>(ParseModelSpec(spec));
    if (Has(opts, "seed")) torch::manual_seed(static_cast<uint64_t>(GetInt(opts, "seed")));
    net_ = Compile(*spec_);
    const ShapeCheck shapes = CheckShapes(net_, *spec_);
    classes_ = shapes.classes;
    largest_activation_ = shapes.largest_activation;
    device_ = ParseDevice(GetString(opts, "device", "cpu"));
    net_->to(device_);
    info.This().As<Napi::Object>().DefineProperty(Napi::PropertyDescriptor::Value("__torchletModel", Napi::Boolean::New(info.Env(), true)));
  });
}

Sequential& Model::Net() {
  if (net_.is_empty()) throw std::runtime_error("the model has been disposed");
  return net_;
}

void Model::Acquire(const char* what) {
  Net();
  bool expected = false;
  if (inferring_ > 0) throw std::runtime_error(std::string("cannot ") + what + ": predictions are in flight on this model; await them first");
  if (!busy_.compare_exchange_strong(expected, true)) {
    throw std::runtime_error(std::string("cannot ") + what + ": the model is busy with another training or evaluation call");
  }
}

void Model::BeginInference() {
  Net();
  if (busy_) throw std::runtime_error("cannot predict: the model is busy with a training or evaluation call");
  if (inferring_++ == 0) {
    was_training_ = net_->is_training();
    net_->eval();
  }
}

void Model::EndInference() {
  if (--inferring_ == 0 && !net_.is_empty()) net_->train(was_training_);
}

Napi::Value Model::NumParams(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&] {
    int64_t n = 0;
    for (const auto& p : Net()->parameters()) n += p.numel();
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  });
}

Napi::Value Model::StateShapes(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&] {
    Napi::Object out = Napi::Object::New(info.Env());
    for (const auto& [name, t] : StateDict(*Net())) {
      Napi::Array shape = Napi::Array::New(info.Env(), t.dim());
      for (int64_t i = 0; i < t.dim(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), static_cast<double>(t.size(i))));
      out.Set(name, shape);
    }
    return out;
  });
}

// stateTensors(): every floating-point state_dict entry as { shape, data: Float32Array },
// in PyTorch's order, for writers of other formats (ONNX). Integer buffers (batch norm's
// num_batches_tracked) only count training steps and are left out.
Napi::Value Model::StateTensors(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&] {
    Napi::Env env = info.Env();
    if (busy_) throw std::runtime_error("cannot read the weights while the model is training or evaluating; await that call first");
    Napi::Object out = Napi::Object::New(env);
    for (const auto& [name, t] : StateDict(*Net())) {
      if (!t.is_floating_point()) continue;
      at::Tensor c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
      Napi::Array shape = Napi::Array::New(env, c.dim());
      for (int64_t i = 0; i < c.dim(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(c.size(i))));
      auto data = Napi::Float32Array::New(env, static_cast<size_t>(c.numel()));
      if (c.numel() > 0) std::memcpy(data.Data(), c.data_ptr<float>(), sizeof(float) * c.numel());
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("shape", shape);
      entry.Set("data", data);
      out.Set(name, entry);
    }
    return out;
  });
}

Napi::Value Model::Save(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    std::string path = ArgString(info, 0, "path");
    Net();
    if (busy_) throw std::runtime_error("cannot save while the model is training or evaluating; await that call first");
    SaveStateDict(*net_, path);
    return info.Env().Undefined();
  });
}

Napi::Value Model::Load(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    std::string path = ArgString(info, 0, "path");
    Acquire("load weights");
    try {
      LoadStateDict(*net_, path);
    } catch (...) {
      Release();
      throw;
    }
    Release();
    return info.Env().Undefined();
  });
}

namespace {

// Up to kSmallPassRows images (inference.h), a CPU prediction runs on the calling thread
// alone, through the inference plan's XNNPACK convs. Measured on 2 cores (SuperLight, one
// thread): one image 300 -> 140 us, 32 images 2.8 -> 2.0 ms. More threads do not pay at
// these sizes, and when the cores are busy (a server's event loop, other processes) a pass
// that waits for a descheduled pool thread took 20-160 ms for 8 images instead of 0.6.
constexpr int64_t kSerialRows = kSmallPassRows;

// Limits this thread's intra-op parallelism to one thread for its lifetime. OpenMP's thread
// count is per calling thread, so other threads (training workers) are unaffected; XNNPACK
// (inference.h) runs on caffe2's process-wide pool, which a thread-local switch bypasses.
class SerialScope {
 public:
  explicit SerialScope(bool on) : on_(on), previous_(on ? at::get_num_threads() : 0), pool_off_(caffe2::_NoPThreadPoolGuard::is_enabled()) {
#ifdef _OPENMP
    if (previous_ > 1) omp_set_num_threads(1);
#endif
    if (on_) caffe2::_NoPThreadPoolGuard::set_enabled(true);
  }
  ~SerialScope() {
#ifdef _OPENMP
    if (previous_ > 1) omp_set_num_threads(previous_);
#endif
    if (on_) caffe2::_NoPThreadPoolGuard::set_enabled(pool_off_);
  }
  SerialScope(const SerialScope&) = delete;
  SerialScope& operator=(const SerialScope&) = delete;

 private:
  bool on_;
  int previous_;
  bool pool_off_;
};

// The pixels argument of predict and predictAsync: [n, C, H, W], uint8 (0-255) or float
// (0-1), copied so that the tensor owns its data and the caller may reuse the array.
at::Tensor PixelsArg(const Napi::CallbackInfo& info, const ModelSpec& s) {
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw TypeError("pixels must be a Uint8Array (0-255) or Float32Array (0-1)");
  auto arr = info[0].As<Napi::TypedArray>();
  int64_t per = s.channels * s.height * s.width;
  if (arr.ElementLength() == 0 || arr.ElementLength() % per != 0) {
    throw RangeError("pixels holds " + std::to_string(arr.ElementLength()) + " values, not a multiple of one image's " + std::to_string(per) +
                     " (" + std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width) + ")");
  }
  int64_t n = static_cast<int64_t>(arr.ElementLength()) / per;
  if (arr.TypedArrayType() == napi_uint8_array || arr.TypedArrayType() == napi_uint8_clamped_array) {
    return torch::from_blob(arr.As<Napi::Uint8Array>().Data(), {n, s.channels, s.height, s.width}, torch::kUInt8).clone();
  }
  if (arr.TypedArrayType() == napi_float32_array) {
    return torch::from_blob(arr.As<Napi::Float32Array>().Data(), {n, s.channels, s.height, s.width}, torch::kFloat32).clone();
  }
  throw TypeError("pixels must be a Uint8Array (0-255) or Float32Array (0-1)");
}

// The model's standardised float input on `device`, from PixelsArg's tensor (consumed).
at::Tensor ModelInput(at::Tensor pixels, const ModelSpec& s, torch::Device device) {
  if (pixels.scalar_type() == torch::kUInt8) return Normalise(pixels.to(device), s);
  return Standardise(pixels.to(device), s);
}

Napi::Float32Array ToJsFloats(Napi::Env env, const at::Tensor& out) {
  auto result = Napi::Float32Array::New(env, static_cast<size_t>(out.numel()));
  std::memcpy(result.Data(), out.data_ptr<float>(), sizeof(float) * out.numel());
  return result;
}

at::Tensor Forward(Sequential& net, at::Tensor input, torch::Device device) {
  const bool serial = device.is_cpu() && input.size(0) <= kSerialRows;
  SerialScope scope(serial);
  c10::InferenceMode guard;
  return net->forward(input).to(torch::kCPU).contiguous();
}

// One inference pass on a libuv worker thread. The JS object is referenced so that the
// model cannot be collected while the pass runs, and BeginInference keeps it from being
// disposed, moved or trained.
class PredictWorker : public Napi::AsyncWorker {
 public:
  PredictWorker(Napi::Env env, Model* model, Napi::ObjectReference model_ref, at::Tensor pixels)
      : Napi::AsyncWorker(env, "torchlet.predict"),
        deferred_(Napi::Promise::Deferred::New(env)),
        model_(model),
        model_ref_(std::move(model_ref)),
        pixels_(std::move(pixels)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      auto pass = [&] { out_ = Forward(model_->Net(), ModelInput(std::move(pixels_), model_->Spec(), model_->Device()), model_->Device()); };
      // Forward runs a small CPU pass with one thread, here; a larger one needs the team.
      if (model_->Device().is_cpu() && pixels_.size(0) > kSerialRows) {
        RunOnComputeThread(pass);
      } else {
        pass();
      }
    } catch (...) {
      SetError(CurrentExceptionMessage());
    }
  }

  void OnOK() override {
    model_->EndInference();
    deferred_.Resolve(ToJsFloats(Env(), out_));
  }

  void OnError(const Napi::Error& e) override {
    model_->EndInference();
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Model* model_;
  Napi::ObjectReference model_ref_;
  at::Tensor pixels_, out_;
};

}  // namespace

// predict(pixels: Uint8Array | Float32Array): log-probabilities [count * classes].
// Synchronous on purpose: a single image takes well under a millisecond, less than a
// thread hop would cost. Servers use predictAsync, which keeps the event loop free.
Napi::Value Model::Predict(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    at::Tensor input = ModelInput(PixelsArg(info, Spec()), Spec(), device_);
    BeginInference();
    at::Tensor out;
    try {
      out = Forward(net_, input, device_);
    } catch (...) {
      EndInference();
      throw;
    }
    EndInference();
    return ToJsFloats(info.Env(), out);
  });
}

// predictAsync(pixels): a Promise of the log-probabilities, computed on a worker thread.
Napi::Value Model::PredictAsync(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    at::Tensor pixels = PixelsArg(info, Spec());
    BeginInference();
    auto* worker = new PredictWorker(info.Env(), this, Napi::Persistent(Value()), std::move(pixels));
    worker->Queue();
    return worker->Promise();
  });
}

namespace {

// Rows of one CPU forward pass in evaluate: 256, unless that many rows of the model's widest
// activation pass 32 MiB, then 128. Interleaved A/B (README, "Evaluation passes of 256
// rows"): 256 rows evaluated the ViT, resnet18, mobilenet_v2, parallel_cnn and super_light
// 6-34% faster than 128, simple_conv_net (37 MiB at 256 rows) 25% slower; 512 rows helped
// only resnet18.
int64_t EvalRows(int64_t largest_activation) {
  return 256 * largest_activation * static_cast<int64_t>(sizeof(float)) <= (int64_t{32} << 20) ? 256 : 128;
}

class EvaluateWorker : public Napi::AsyncWorker {
 public:
  // The tensors are taken here, on the JS thread, so that disposing the Dataset while
  // this runs only drops the Dataset's references, not the worker's.
  EvaluateWorker(Napi::Env env, Model* model, Napi::ObjectReference model_ref, at::Tensor images, at::Tensor labels, int64_t batch,
                 bool keep_log_probs)
      : Napi::AsyncWorker(env, "torchlet.evaluate"),
        deferred_(Napi::Promise::Deferred::New(env)),
        model_(model),
        model_ref_(std::move(model_ref)),
        images_(std::move(images)),
        labels_(std::move(labels)),
        batch_(batch),
        keep_(keep_log_probs) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      RunOnComputeThread([&] {
        auto start = std::chrono::steady_clock::now();
        c10::InferenceMode guard;
        auto& net = model_->Net();
        bool was_training = net->is_training();
        net->eval();
        const at::Tensor& images = images_;
        const at::Tensor& labels = labels_;
        int64_t n = images.size(0);
        if (keep_) log_probs_ = torch::empty({n, model_->Classes()}, torch::kFloat32);
        predictions_ = torch::empty({n}, torch::kUInt8);
        double loss_sum = 0;
        int64_t correct = 0;
        // Forward passes are capped on CPU, where a pass whose activations stay in cache runs
        // up to ten times faster per image than a 1000-image one; in eval mode the result does
        // not depend on how the rows are grouped.
        const int64_t chunk = model_->Device().is_cpu() ? std::min(batch_, EvalRows(model_->LargestActivation())) : batch_;
        for (int64_t i = 0; i < n; i += chunk) {
          int64_t end = std::min(n, i + chunk);
          at::Tensor out = net->forward(Normalise(images.slice(0, i, end), model_->Spec()));
          at::Tensor y = labels.slice(0, i, end);
          at::Tensor pred = out.argmax(1);
          loss_sum += torch::nll_loss(out, y, {}, at::Reduction::Sum).item<double>();
          correct += pred.eq(y).sum().item<int64_t>();
          predictions_.slice(0, i, end).copy_(pred.to(torch::kCPU));
          if (keep_) log_probs_.slice(0, i, end).copy_(out.to(torch::kCPU));
        }
        net->train(was_training);
        loss_ = n ? loss_sum / static_cast<double>(n) : 0;
        correct_ = correct;
        count_ = n;
        seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      });
    } catch (...) {
      SetError(CurrentExceptionMessage());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    model_->Release();
    Napi::Object r = Napi::Object::New(env);
    r.Set("loss", loss_);
    r.Set("correct", static_cast<double>(correct_));
    r.Set("count", static_cast<double>(count_));
    r.Set("accuracy", count_ ? static_cast<double>(correct_) / static_cast<double>(count_) : 0.0);
    r.Set("seconds", seconds_);
    auto preds = Napi::Uint8Array::New(env, static_cast<size_t>(count_));
    std::memcpy(preds.Data(), predictions_.data_ptr<uint8_t>(), static_cast<size_t>(count_));
    r.Set("predictions", preds);
    if (keep_) {
      auto lp = Napi::Float32Array::New(env, static_cast<size_t>(log_probs_.numel()));
      std::memcpy(lp.Data(), log_probs_.data_ptr<float>(), sizeof(float) * log_probs_.numel());
      r.Set("logProbs", lp);
    }
    deferred_.Resolve(r);
  }

  void OnError(const Napi::Error& e) override {
    model_->Release();
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Model* model_;
  Napi::ObjectReference model_ref_;
  at::Tensor images_, labels_;
  int64_t batch_;
  bool keep_;
  at::Tensor log_probs_, predictions_;
  double loss_ = 0, seconds_ = 0;
  int64_t correct_ = 0, count_ = 0;
};

}  // namespace

// evaluate(dataset, { batchSize?, logProbs? }): Promise of loss, accuracy, predictions.
Napi::Value Model::Evaluate(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Dataset* data = Dataset::FromJs(info[0], "dataset");
    Napi::Object opts = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(info.Env());
    int64_t batch = GetInt(opts, "batchSize", 1000);
    if (batch <= 0) throw RangeError("batchSize must be a positive integer, got " + std::to_string(batch));
    data->CheckCompatible(Spec(), Classes());
    Acquire("evaluate");
    auto* worker = new EvaluateWorker(info.Env(), this, Napi::Persistent(Value()), data->Images(device_), data->Labels(device_), batch,
                                      GetBool(opts, "logProbs", false));
    worker->Queue();
    return worker->Promise();
  });
}

Napi::Value Model::To(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    torch::Device device = ParseDevice(ArgString(info, 0, "device"));
    Acquire("move the model");
    net_->to(device);
    device_ = device;
    Release();
    return info.Env().Undefined();
  });
}

Napi::Value Model::GetDevice(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), device_.str());
}

Napi::Value Model::Dispose(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    if (busy_) throw std::runtime_error("cannot dispose the model while it is training or evaluating; await that call first");
    if (inferring_ > 0) throw std::runtime_error("cannot dispose the model while predictions are in flight; await them first");
    net_ = Sequential(nullptr);
    return info.Env().Undefined();
  });
}

Napi::Value Model::IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), net_.is_empty());
}

}  // namespace torchlet
