#include "pickle_compat.h"

#include <caffe2/serialize/inline_container.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <sstream>
#include <stdexcept>

namespace torchlet {

namespace {

const std::string kOrderedDict = "collections\nOrderedDict\n";

std::string ReadRecord(caffe2::serialize::PyTorchStreamReader& reader, const std::string& name) {
  auto [ptr, size] = reader.getRecord(name);
  return std::string(static_cast<const char*>(ptr.get()), size);
}

uint32_t Le32(const std::string& s, size_t at) {
  if (at + 4 > s.size()) throw std::runtime_error("truncated pickle");
  uint32_t v;
  std::memcpy(&v, s.data() + at, 4);
  return v;
}

// Replays a protocol-2 pickle (what torch.save writes) opcode by opcode, tracking where
// each stack item starts in the output, and rewrites the three things the 1.13
// unpickler cannot read:
//   OrderedDict [memoised] () REDUCE  ->  EMPTY_DICT
//   key value SETITEM                 ->  MARK key value SETITEMS
//   object state BUILD                ->  object   (the state only holds _metadata)
std::string Rewrite(const std::string& in) {
  enum Kind { kValue, kMark, kOdictClass, kOdictArgs };
  struct Item {
    size_t start;
    Kind kind;
  };
  std::string out;
  out.reserve(in.size() + 64);
  std::vector<Item> stack;
  std::set<uint32_t> odict_memo;
  auto pop = [&]() {
    if (stack.empty()) throw std::runtime_error("malformed pickle: stack underflow");
    Item it = stack.back();
    stack.pop_back();
    return it;
  };
  auto pop_to_mark = [&]() {
    while (true) {
      Item it = pop();
      if (it.kind == kMark) return it;
      if (it.kind != kValue) throw std::runtime_error("OrderedDict used in an unsupported way");
    }
  };
  auto need = [&](size_t at, size_t n) {
    if (at + n > in.size()) throw std::runtime_error("truncated pickle");
  };
  size_t i = 0;
  while (i < in.size()) {
    const auto op = static_cast<unsigned char>(in[i]);
    const size_t start = out.size();
    size_t len = 1;
    switch (op) {
      case 'c': {  // GLOBAL module\nname\n
        size_t a = in.find('\n', i + 1), b = a == std::string::npos ? a : in.find('\n', a + 1);
        if (b == std::string::npos) throw std::runtime_error("truncated pickle");
        len = b + 1 - i;
        if (in.compare(i + 1, len - 1, kOrderedDict) == 0) {
          stack.push_back({start, kOdictClass});
          i += len;
          continue;
        }
        out.append(in, i, len);
        stack.push_back({start, kValue});
        i += len;
        continue;
      }
      case 'q': case 'r': {  // BINPUT, LONG_BINPUT
        len = op == 'q' ? 2 : 5;
        need(i, len);
        if (!stack.empty() && stack.back().kind == kOdictClass) {
          odict_memo.insert(op == 'q' ? static_cast<unsigned char>(in[i + 1]) : Le32(in, i + 1));
          i += len;
          continue;
        }
        out.append(in, i, len);
        i += len;
        continue;
      }
      case 'h': case 'j': {  // BINGET, LONG_BINGET
        len = op == 'h' ? 2 : 5;
        need(i, len);
        uint32_t idx = op == 'h' ? static_cast<unsigned char>(in[i + 1]) : Le32(in, i + 1);
        if (odict_memo.count(idx)) {
          stack.push_back({start, kOdictClass});
        } else {
          out.append(in, i, len);
          stack.push_back({start, kValue});
        }
        i += len;
        continue;
      }
      case ')':  // EMPTY_TUPLE
        if (!stack.empty() && stack.back().kind == kOdictClass) {
          stack.push_back({start, kOdictArgs});
        } else {
          out.push_back(')');
          stack.push_back({start, kValue});
        }
        ++i;
        continue;
      case 'R': {  // REDUCE
        Item args = pop(), fn = pop();
        if (fn.kind == kOdictClass) {
          if (args.kind != kOdictArgs) throw std::runtime_error("OrderedDict built with arguments");
          out.push_back('}');
        } else {
          out.push_back('R');
        }
        stack.push_back({fn.start, kValue});
        ++i;
        continue;
      }
      case 's': {  // SETITEM
        pop();
        Item key = pop();
        out.insert(out.begin() + static_cast<std::ptrdiff_t>(key.start), '(');
        out.push_back('u');
        ++i;
        continue;
      }
      case 'b': {  // BUILD
        Item state = pop();
        out.resize(state.start);
        ++i;
        continue;
      }
      default:
        break;
    }
    // Everything else is copied as it is; only its stack effect matters.
    int pops = 0;
    bool push = false, to_mark = false;
    switch (op) {
      case 0x80: len = 2; break;                                          // PROTO
      case 'K': len = 2; push = true; break;                              // BININT1
      case 'M': len = 3; push = true; break;                              // BININT2
      case 'J': len = 5; push = true; break;                              // BININT
      case 'G': len = 9; push = true; break;                              // BINFLOAT
      case 'X': case 'B': need(i, 5); len = 5 + Le32(in, i + 1); push = true; break;  // BINUNICODE, BINBYTES
      case 'U': case 'C': case 0x8a:                                      // SHORT_BINSTRING, SHORT_BINBYTES, LONG1
        need(i, 2);
        len = 2 + static_cast<unsigned char>(in[i + 1]);
        push = true;
        break;
      case '}': case ']': case 'N': case 0x88: case 0x89: push = true; break;  // empty dict/list, None, True, False
      case '(': break;                                                    // MARK, pushed below
      case 't': to_mark = true; push = true; break;                       // TUPLE
      case 0x85: pops = 1; push = true; break;                            // TUPLE1
      case 0x86: pops = 2; push = true; break;                            // TUPLE2
      case 0x87: pops = 3; push = true; break;                            // TUPLE3
      case 'Q': pops = 1; push = true; break;                             // BINPERSID
      case 0x81: pops = 2; push = true; break;                            // NEWOBJ
      case 'u': case 'e': to_mark = true; break;                          // SETITEMS, APPENDS
      case 'a': pops = 1; break;                                          // APPEND
      case '0': pops = 1; break;                                          // POP
      case '.': break;                                                    // STOP
      default: {
        std::ostringstream msg;
        msg << "unsupported pickle opcode 0x" << std::hex << static_cast<int>(op) << " at byte " << std::dec << i;
        throw std::runtime_error(msg.str());
      }
    }
    need(i, len);
    out.append(in, i, len);
    size_t item_start = start;
    if (to_mark) item_start = pop_to_mark().start;
    for (int k = 0; k < pops; ++k) item_start = pop().start;
    if (op == '(') stack.push_back({start, kMark});
    if (push) stack.push_back({item_start, kValue});
    i += len;
  }
  return out;
}

}  // namespace

bool UsesOrderedDict(const std::vector<char>& zip_bytes) {
  try {
    std::istringstream stream(std::string(zip_bytes.begin(), zip_bytes.end()));
    caffe2::serialize::PyTorchStreamReader reader(&stream);
    return reader.hasRecord("data.pkl") && ReadRecord(reader, "data.pkl").find(kOrderedDict) != std::string::npos;
  } catch (const std::exception&) {
    return false;
  }
}

std::vector<char> OrderedDictsToDicts(const std::vector<char>& zip_bytes) {
  std::istringstream stream(std::string(zip_bytes.begin(), zip_bytes.end()));
  caffe2::serialize::PyTorchStreamReader reader(&stream);
  std::string rewritten;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* buf, size_t n) {
    rewritten.append(static_cast<const char*>(buf), n);
    return n;
  });
  for (const auto& name : reader.getAllRecords()) {
    if (name == "version") continue;  // the writer adds its own
    std::string data = ReadRecord(reader, name);
    if (name == "data.pkl") data = Rewrite(data);
    writer.writeRecord(name, data.data(), data.size());
  }
  writer.writeEndOfFile();
  return std::vector<char>(rewritten.begin(), rewritten.end());
}

}  // namespace torchlet
