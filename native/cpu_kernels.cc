#include "cpu_kernels.h"

namespace torchlet {

CpuKernels& Kernels() {
  static CpuKernels kernels;
  return kernels;
}

}  // namespace torchlet
