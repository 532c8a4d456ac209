#include "cpu_kernels.h"

namespace torchlet {

CpuKernels& Kernels() {
  static CpuKernels kernels;
  return kernels;
}

bool HasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

}  // namespace torchlet
