// inflateInto: zlib-wrapped deflate data (a PNG's IDAT stream) inflated into a buffer that
// the caller keeps. node:zlib allocates a new output buffer for every call, and for a
// 280x280 RGBA upload those 313 KB per request were what drove the server's garbage
// collection (README, Serving speed). The zlib is Node's own: the node binary exports its
// symbols, and the addon's references bind to them first.
#include "inflate.h"

#include <zlib.h>

#include <string>

#include "errors.h"

namespace torchlet {

namespace {

Napi::Uint8Array ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw TypeError(std::string(what) + " must be a Uint8Array");
  }
  return info[i].As<Napi::Uint8Array>();
}

}  // namespace

Napi::Value InflateInto(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Uint8Array src = ArgBytes(info, 0, "inflateInto: src");
    Napi::Uint8Array dst = ArgBytes(info, 1, "inflateInto: dst");
    if (src.ByteLength() > UINT_MAX || dst.ByteLength() > UINT_MAX) throw RangeError("inflateInto: buffers over 4 GiB are not supported");
    z_stream z{};
    if (inflateInit(&z) != Z_OK) throw std::runtime_error("inflateInto: zlib could not start (out of memory?)");
    z.next_in = src.Data();
    z.avail_in = static_cast<uInt>(src.ByteLength());
    z.next_out = dst.Data();
    z.avail_out = static_cast<uInt>(dst.ByteLength());
    const int status = inflate(&z, Z_FINISH);
    const uLong written = z.total_out;
    const bool full = z.avail_out == 0;
    const std::string detail = z.msg != nullptr ? z.msg : "";
    inflateEnd(&z);
    switch (status) {
      case Z_STREAM_END:
        return Napi::Number::New(info.Env(), static_cast<double>(written));
      case Z_BUF_ERROR:
        if (full) throw RangeError("the data inflates to more than " + std::to_string(dst.ByteLength()) + " bytes");
        throw RangeError("the compressed data ends early (" + std::to_string(written) + " bytes inflated)");
      case Z_MEM_ERROR:
        throw std::runtime_error("zlib ran out of memory");
      default:
        throw RangeError("the compressed data is invalid" + (detail.empty() ? std::string() : ": " + detail));
    }
  });
}

}  // namespace torchlet
