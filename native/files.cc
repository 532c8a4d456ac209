#include "files.h"

#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <torch/csrc/jit/serialization/import_read.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace torchlet {

namespace {

std::string Errno(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

class BoundedReader : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BoundedReader(const std::vector<char>& data) : data_(data) {}
  size_t size() const override { return data_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* what) const override {
    if (pos >= data_.size()) return 0;
    n = std::min<size_t>(n, data_.size() - static_cast<size_t>(pos));
    std::memcpy(buf, data_.data() + pos, n);
    return n;
  }

 private:
  const std::vector<char>& data_;
};

std::string DirName(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  return pos == 0 ? "/" : path.substr(0, pos);
}

}  // namespace

std::vector<char> ReadFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw std::runtime_error(Errno("cannot read", path));
  if (S_ISDIR(st.st_mode)) throw std::runtime_error("cannot read '" + path + "': it is a directory");
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(Errno("cannot open", path));
  std::vector<char> data(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = read(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int saved = errno;
      close(fd);
      errno = saved;
      throw std::runtime_error(n == 0 ? "'" + path + "' shrank while being read" : Errno("cannot read", path));
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  return data;
}

void AtomicWrite(const std::string& path, const char* data, size_t size) {
  std::string tmp = path + ".tmp-" + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(Errno("cannot create", tmp));
  auto fail = [&](const std::string& what) {
    std::string msg = Errno(what, path);
    close(fd);
    unlink(tmp.c_str());
    throw std::runtime_error(msg + " (the previous file, if any, is unchanged)");
  };
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot write");
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) fail("cannot flush");
  if (close(fd) != 0) {
    std::string msg = Errno("cannot close", path);
    unlink(tmp.c_str());
    throw std::runtime_error(msg);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    std::string msg = Errno("cannot rename into", path);
    unlink(tmp.c_str());
    throw std::runtime_error(msg);
  }
  int dir = open(DirName(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);
    close(dir);
  }
}

c10::IValue PickleLoad(const std::vector<char>& bytes) {
  // What torch::pickle_load does, with BoundedReader in place of its VectorReader.
  caffe2::serialize::PyTorchStreamReader reader(std::make_unique<BoundedReader>(bytes));
  return torch::jit::readArchiveAndTensors("data", /*pickle_prefix=*/"", /*tensor_prefix=*/"", /*type_resolver=*/c10::nullopt,
                                           /*obj_loader=*/c10::nullopt, /*device=*/c10::nullopt, reader);
}

}  // namespace torchlet
