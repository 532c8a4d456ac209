// torch.save(model.state_dict()) pickles a collections.OrderedDict. libtorch 1.13's C++
// unpickler turns every OrderedDict into None (pytorch/pytorch#37213, fixed upstream only
// in 2024), so such files would not load. This rewrites the pickle inside the zip so
// that each OrderedDict() becomes a plain dict, which the unpickler reads as a dict.
#pragma once

#include <string>
#include <vector>

namespace torchlet {

// True when the archive's data.pkl constructs a collections.OrderedDict.
bool UsesOrderedDict(const std::vector<char>& zip_bytes);

// Returns a copy of the torch.save zip archive with OrderedDicts turned into dicts.
// Throws std::runtime_error if the pickle uses an opcode this rewriter does not know.
std::vector<char> OrderedDictsToDicts(const std::vector<char>& zip_bytes);

}  // namespace torchlet
