// Model: a compiled spec on a device, exposed to JS as an ObjectWrap.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <atomic>
#include <memory>
#include <string>

#include "spec.h"

namespace torchlet {

torch::Device ParseDevice(const std::string& name);

// Standardises a float batch in [0, 1] with the spec's per-channel mean and std, in place.
at::Tensor Standardise(at::Tensor unit, const ModelSpec& spec);
// Turns a uint8 batch [N, C, H, W] into the model's float input on the same device.
at::Tensor Normalise(const at::Tensor& pixels, const ModelSpec& spec);

class Model : public Napi::ObjectWrap<Model> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Model* FromJs(const Napi::Value& v, const char* what);
  explicit Model(const Napi::CallbackInfo& info);

  Sequential& Net();
  const ModelSpec& Spec() const { return *spec_; }
  torch::Device Device() const { return device_; }
  int64_t Classes() const { return classes_; }
  int64_t LargestActivation() const { return largest_activation_; }

  // Long-running work (an epoch, an evaluation) holds the model so that it is not
  // disposed, moved or trained twice at once underneath a worker thread.
  void Acquire(const char* what);
  void Release() { busy_ = false; }

  // Inference (predict, predictAsync) only reads the weights, so any number of passes may
  // run at once; they only exclude the exclusive work above. Both calls run on the JS
  // thread, which orders them: the first pass switches the net to eval mode, the last
  // one out restores the mode it found.
  void BeginInference();
  void EndInference();

 private:
  Napi::Value NumParams(const Napi::CallbackInfo& info);
  Napi::Value StateShapes(const Napi::CallbackInfo& info);
  Napi::Value StateTensors(const Napi::CallbackInfo& info);
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Predict(const Napi::CallbackInfo& info);
  Napi::Value PredictAsync(const Napi::CallbackInfo& info);
  Napi::Value Evaluate(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);

  std::unique_ptr<ModelSpec> spec_;  // heap-held: compiled layers point into it
  Sequential net_{nullptr};
  torch::Device device_{torch::kCPU};
  int64_t classes_ = 0;
  int64_t largest_activation_ = 0;
  std::atomic<bool> busy_{false};
  int inferring_ = 0;
  bool was_training_ = false;
};

}  // namespace torchlet
