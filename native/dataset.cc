#include "dataset.h"

#include <cstring>

#include "errors.h"

namespace torchlet {

namespace {
Napi::FunctionReference* constructor = nullptr;
}

Napi::Function Dataset::Init(Napi::Env env) {
  Napi::Function fn = DefineClass(env, "Dataset",
                                  {
                                      InstanceAccessor<&Dataset::GetSize>("size"),
                                      InstanceAccessor<&Dataset::GetShape>("shape"),
                                      InstanceMethod<&Dataset::Subset>("subset"),
                                      InstanceMethod<&Dataset::Take>("take"),
                                      InstanceMethod<&Dataset::GetLabels>("labels"),
                                      InstanceMethod<&Dataset::Dispose>("dispose"),
                                      InstanceAccessor<&Dataset::IsDisposed>("disposed"),
                                  });
  constructor = new Napi::FunctionReference(Napi::Persistent(fn));
  env.SetInstanceData<Napi::FunctionReference>(constructor);
  return fn;
}

Dataset* Dataset::FromJs(const Napi::Value& v, const char* what) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(constructor->Value())) {
    throw TypeError(std::string(what) + " must be a native Dataset");
  }
  Dataset* d = Napi::ObjectWrap<Dataset>::Unwrap(v.As<Napi::Object>());
  if (!d->images_.defined()) throw std::runtime_error(std::string(what) + " has been disposed");
  return d;
}

// new Dataset(images: Uint8Array, labels: Uint8Array, [count, channels, height, width])
// The bytes are copied, so the JS buffers may be dropped afterwards.
Dataset::Dataset(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Dataset>(info) {
  Guard(info.Env(), [&] {
    if (info.Length() == 0) return;  // an empty shell, filled by Subset through Adopt
    if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsArray()) {
      throw TypeError("Dataset(images: Uint8Array, labels: Uint8Array, shape: [count, channels, height, width])");
    }
    auto images = info[0].As<Napi::TypedArray>();
    auto labels = info[1].As<Napi::TypedArray>();
    if (images.TypedArrayType() != napi_uint8_array || labels.TypedArrayType() != napi_uint8_array) {
      throw TypeError("Dataset images and labels must be Uint8Arrays");
    }
    auto shape_arr = info[2].As<Napi::Array>();
    if (shape_arr.Length() != 4) throw RangeError("Dataset shape must be [count, channels, height, width]");
    std::vector<int64_t> shape;
    for (uint32_t i = 0; i < 4; ++i) {
      Napi::Value v = shape_arr.Get(i);
      if (!v.IsNumber()) throw TypeError("Dataset shape must hold numbers");
      int64_t d = v.As<Napi::Number>().Int64Value();
      if (d <= 0) throw RangeError("Dataset shape " + ShapeString(shape) + " must be positive");
      shape.push_back(d);
    }
    int64_t expected = shape[0] * shape[1] * shape[2] * shape[3];
    if (static_cast<int64_t>(images.ElementLength()) != expected) {
      throw RangeError("Dataset images hold " + std::to_string(images.ElementLength()) + " bytes, but shape " + ShapeString(shape) + " needs " +
                       std::to_string(expected));
    }
    if (static_cast<int64_t>(labels.ElementLength()) != shape[0]) {
      throw RangeError("Dataset has " + std::to_string(shape[0]) + " images but " + std::to_string(labels.ElementLength()) + " labels");
    }
    at::Tensor img = torch::empty(shape, torch::kUInt8);
    std::memcpy(img.data_ptr<uint8_t>(), images.As<Napi::Uint8Array>().Data(), static_cast<size_t>(expected));
    at::Tensor lab = torch::empty({shape[0]}, torch::kUInt8);
    std::memcpy(lab.data_ptr<uint8_t>(), labels.As<Napi::Uint8Array>().Data(), static_cast<size_t>(shape[0]));
    Adopt(info.Env(), img, lab.to(torch::kInt64));
  });
}

void Dataset::Adopt(Napi::Env env, at::Tensor images, at::Tensor labels) {
  images_ = std::move(images);
  labels_ = std::move(labels);
  max_label_ = labels_.max().item<int64_t>();
  external_bytes_ = images_.numel() + labels_.numel() * 8;
  Napi::MemoryManagement::AdjustExternalMemory(env, external_bytes_);
}

void Dataset::Release(Napi::Env env) {
  if (!images_.defined()) return;
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    device_cache_.clear();
  }
  images_ = at::Tensor();
  labels_ = at::Tensor();
  Napi::MemoryManagement::AdjustExternalMemory(env, -external_bytes_);
  external_bytes_ = 0;
}

void Dataset::Finalize(Napi::Env env) { Release(env); }

const at::Tensor& Dataset::Images(torch::Device device) {
  if (device.is_cpu()) return images_;
  std::lock_guard<std::mutex> lock(cache_mutex_);
  auto& entry = device_cache_[device.str()];
  if (!entry.first.defined()) entry = {images_.to(device), labels_.to(device)};
  return entry.first;
}

const at::Tensor& Dataset::Labels(torch::Device device) {
  if (device.is_cpu()) return labels_;
  Images(device);
  std::lock_guard<std::mutex> lock(cache_mutex_);
  return device_cache_[device.str()].second;
}

void Dataset::CheckCompatible(const ModelSpec& spec, int64_t classes) const {
  if (images_.size(1) != spec.channels || images_.size(2) != spec.height || images_.size(3) != spec.width) {
    throw RangeError("dataset images are " + ShapeString(images_.sizes().slice(1)) + " but model '" + spec.name + "' takes [" +
                     std::to_string(spec.channels) + ", " + std::to_string(spec.height) + ", " + std::to_string(spec.width) + "]");
  }
  if (max_label_ >= classes) {
    throw RangeError("dataset has label " + std::to_string(max_label_) + " but model '" + spec.name + "' has only " + std::to_string(classes) +
                     " classes");
  }
}

Napi::Value Dataset::GetSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), images_.defined() ? static_cast<double>(images_.size(0)) : 0);
}

Napi::Value Dataset::GetShape(const Napi::CallbackInfo& info) {
  Napi::Array shape = Napi::Array::New(info.Env(), 4);
  for (uint32_t i = 0; i < 4; ++i) shape.Set(i, Napi::Number::New(info.Env(), images_.defined() ? static_cast<double>(images_.size(i)) : 0));
  return shape;
}

// subset(start, end): a new Dataset of rows [start, end), sharing no memory with this one.
Napi::Value Dataset::Subset(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    if (!images_.defined()) throw std::runtime_error("the dataset has been disposed");
    int64_t start = ArgInt(info, 0, "start");
    int64_t end = ArgInt(info, 1, "end");
    if (start < 0 || end > Size() || start >= end) {
      throw RangeError("subset(" + std::to_string(start) + ", " + std::to_string(end) + ") is outside [0, " + std::to_string(Size()) + "]");
    }
    Napi::Object obj = constructor->New({});
    Dataset* d = Napi::ObjectWrap<Dataset>::Unwrap(obj);
    d->Adopt(info.Env(), images_.slice(0, start, end).clone(), labels_.slice(0, start, end).clone());
    return obj;
  });
}

// take(indices: Int32Array): a new Dataset of the given rows, in that order (a validation split).
Napi::Value Dataset::Take(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    if (!images_.defined()) throw std::runtime_error("the dataset has been disposed");
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      throw TypeError("take(indices) needs an Int32Array");
    }
    auto idx = info[0].As<Napi::Int32Array>();
    if (idx.ElementLength() == 0) throw RangeError("take(indices) needs at least one index");
    at::Tensor index = torch::empty({static_cast<int64_t>(idx.ElementLength())}, torch::kInt64);
    int64_t* ip = index.data_ptr<int64_t>();
    for (size_t i = 0; i < idx.ElementLength(); ++i) {
      if (idx[i] < 0 || idx[i] >= Size()) throw RangeError("take: index " + std::to_string(idx[i]) + " is outside [0, " + std::to_string(Size()) + ")");
      ip[i] = idx[i];
    }
    Napi::Object obj = constructor->New({});
    Dataset* d = Napi::ObjectWrap<Dataset>::Unwrap(obj);
    d->Adopt(info.Env(), images_.index_select(0, index), labels_.index_select(0, index));
    return obj;
  });
}

// labels(): a copy of the labels as a Uint8Array.
Napi::Value Dataset::GetLabels(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    if (!images_.defined()) throw std::runtime_error("the dataset has been disposed");
    at::Tensor l = labels_.to(torch::kUInt8).contiguous();
    auto out = Napi::Uint8Array::New(info.Env(), static_cast<size_t>(l.numel()));
    std::memcpy(out.Data(), l.data_ptr<uint8_t>(), static_cast<size_t>(l.numel()));
    return out;
  });
}

Napi::Value Dataset::Dispose(const Napi::CallbackInfo& info) {
  Release(info.Env());
  return info.Env().Undefined();
}

Napi::Value Dataset::IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !images_.defined());
}

}  // namespace torchlet
