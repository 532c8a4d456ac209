// Whole-file reads and crash-safe writes for weights and checkpoints.
#pragma once

#include <ATen/core/ivalue.h>

#include <string>
#include <vector>

namespace torchlet {

std::vector<char> ReadFile(const std::string& path);

// Writes to a temporary file beside `path`, fsyncs it, then renames it over `path`,
// so a crash or a full disk leaves either the old file or the new one, never half.
void AtomicWrite(const std::string& path, const char* data, size_t size);

// torch::pickle_load, but reading the archive through a bounds-checked adapter: libtorch
// 1.13's own adapter copies past the end of the buffer when a truncated or corrupt zip
// points beyond it (a heap out-of-bounds read that AddressSanitizer reports). Here a
// short read makes the zip reader throw a c10::Error instead.
c10::IValue PickleLoad(const std::vector<char>& bytes);

}  // namespace torchlet
