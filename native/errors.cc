#include "errors.h"

#include <cmath>
#include <sstream>

namespace torchlet {

std::string TorchMessage(const c10::Error& e) {
  std::string msg = e.what_without_backtrace();
  // what_without_backtrace still ends with "Exception raised from ..." on some builds.
  auto pos = msg.find("\nException raised from");
  if (pos != std::string::npos) msg.resize(pos);
  return msg;
}

std::string CurrentExceptionMessage() {
  try {
    throw;
  } catch (const c10::Error& e) {
    return TorchMessage(e);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown native error";
  }
}

std::string ShapeString(at::IntArrayRef shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

static std::string TypeName(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) return "number";
  if (v.IsString()) return "string";
  if (v.IsBoolean()) return "boolean";
  if (v.IsArray()) return "array";
  if (v.IsFunction()) return "function";
  return "object";
}

bool Has(const Napi::Object& o, const char* key) {
  return o.Has(key) && !o.Get(key).IsUndefined();
}

double GetNumber(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw TypeError(std::string("option '") + key + "' must be a number, got " + TypeName(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw RangeError(std::string("option '") + key + "' must be a finite number, got " + std::to_string(d));
  return d;
}

double GetNumber(const Napi::Object& o, const char* key, double fallback) {
  return Has(o, key) ? GetNumber(o, key) : fallback;
}

int64_t GetInt(const Napi::Object& o, const char* key) {
  double d = GetNumber(o, key);
  if (d != std::floor(d) || std::fabs(d) > 9007199254740991.0) {
    throw RangeError(std::string("option '") + key + "' must be an integer, got " + std::to_string(d));
  }
  return static_cast<int64_t>(d);
}

int64_t GetInt(const Napi::Object& o, const char* key, int64_t fallback) {
  return Has(o, key) ? GetInt(o, key) : fallback;
}

bool GetBool(const Napi::Object& o, const char* key, bool fallback) {
  if (!Has(o, key)) return fallback;
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) throw TypeError(std::string("option '") + key + "' must be a boolean, got " + TypeName(v));
  return v.As<Napi::Boolean>().Value();
}

std::string GetString(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throw TypeError(std::string("option '") + key + "' must be a string, got " + TypeName(v));
  return v.As<Napi::String>().Utf8Value();
}

std::string GetString(const Napi::Object& o, const char* key, const std::string& fallback) {
  return Has(o, key) ? GetString(o, key) : fallback;
}

Napi::Object GetObject(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsObject() || v.IsArray()) throw TypeError(std::string("option '") + key + "' must be an object, got " + TypeName(v));
  return v.As<Napi::Object>();
}

Napi::Object ArgObject(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsObject()) {
    throw TypeError(std::string(what) + " must be an object, got " + (info.Length() <= i ? "nothing" : TypeName(info[i])));
  }
  return info[i].As<Napi::Object>();
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) {
    throw TypeError(std::string(what) + " must be a string, got " + (info.Length() <= i ? "nothing" : TypeName(info[i])));
  }
  return info[i].As<Napi::String>().Utf8Value();
}

int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    throw TypeError(std::string(what) + " must be a number, got " + (info.Length() <= i ? "nothing" : TypeName(info[i])));
  }
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d)) throw RangeError(std::string(what) + " must be an integer, got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

}  // namespace torchlet
