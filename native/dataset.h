// Dataset: images and labels held natively as tensors, so that batching, shuffling
// and augmentation never cross the JS boundary.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <map>
#include <mutex>
#include <string>

#include "spec.h"

namespace torchlet {

class Dataset : public Napi::ObjectWrap<Dataset> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Dataset* FromJs(const Napi::Value& v, const char* what);
  explicit Dataset(const Napi::CallbackInfo& info);
  void Finalize(Napi::Env env) override;

  // uint8 [N, C, H, W] and int64 [N], copied to `device` once and then cached.
  const at::Tensor& Images(torch::Device device);
  const at::Tensor& Labels(torch::Device device);
  int64_t Size() const { return images_.size(0); }

  // Throws unless the images fit the model's input and every label is one of its classes.
  void CheckCompatible(const ModelSpec& spec, int64_t classes) const;

 private:
  Napi::Value GetSize(const Napi::CallbackInfo& info);
  Napi::Value GetShape(const Napi::CallbackInfo& info);
  Napi::Value Subset(const Napi::CallbackInfo& info);
  Napi::Value Take(const Napi::CallbackInfo& info);
  Napi::Value GetLabels(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);
  void Release(Napi::Env env);
  void Adopt(Napi::Env env, at::Tensor images, at::Tensor labels);

  at::Tensor images_, labels_;
  int64_t max_label_ = 0;
  int64_t external_bytes_ = 0;
  std::mutex cache_mutex_;
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> device_cache_;
};

}  // namespace torchlet
