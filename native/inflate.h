#pragma once

#include <napi.h>

namespace torchlet {

// inflateInto(src: Uint8Array, dst: Uint8Array): number of bytes written to dst.
Napi::Value InflateInto(const Napi::CallbackInfo& info);

}  // namespace torchlet
