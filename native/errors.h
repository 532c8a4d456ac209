// Every N-API entry point runs its body through Guard, so that no C++ exception
// (c10::Error from libtorch, std::exception from us) ever reaches the N-API boundary
// uncaught and aborts Node: each becomes a JavaScript Error instead.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace torchlet {

// Thrown for arguments of the wrong JavaScript type; surfaces as a TypeError.
struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Thrown for arguments of the right type but an unusable value; surfaces as a RangeError.
struct RangeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// libtorch's messages carry a C++ backtrace that means nothing to a JS user.
std::string TorchMessage(const c10::Error& e);

// Turns the exception in flight into a message; for use in worker threads.
std::string CurrentExceptionMessage();

template <typename F>
auto Guard(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const TypeError& e) {
    throw Napi::TypeError::New(env, e.what());
  } catch (const RangeError& e) {
    throw Napi::RangeError::New(env, e.what());
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, TorchMessage(e));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

std::string ShapeString(at::IntArrayRef shape);

// Typed readers for option objects: each names the offending key on error.
double GetNumber(const Napi::Object& o, const char* key, double fallback);
double GetNumber(const Napi::Object& o, const char* key);
int64_t GetInt(const Napi::Object& o, const char* key, int64_t fallback);
int64_t GetInt(const Napi::Object& o, const char* key);
bool GetBool(const Napi::Object& o, const char* key, bool fallback);
std::string GetString(const Napi::Object& o, const char* key, const std::string& fallback);
std::string GetString(const Napi::Object& o, const char* key);
Napi::Object GetObject(const Napi::Object& o, const char* key);
bool Has(const Napi::Object& o, const char* key);

// Positional argument readers.
Napi::Object ArgObject(const Napi::CallbackInfo& info, size_t i, const char* what);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what);
int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* what);

}  // namespace torchlet
