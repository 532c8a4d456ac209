// Whole-file reads and crash-safe writes for weights and checkpoints.
#pragma once

#include <string>
#include <vector>

namespace torchlet {

std::vector<char> ReadFile(const std::string& path);

// Writes to a temporary file beside `path`, fsyncs it, then renames it over `path`,
// so a crash or a full disk leaves either the old file or the new one, never half.
void AtomicWrite(const std::string& path, const char* data, size_t size);

}  // namespace torchlet
