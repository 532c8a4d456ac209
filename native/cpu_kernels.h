// Process-wide switches for torchlet's own CPU paths, so that what each one gives can be
// measured (bench/zoo.ts --ablate) and each can be ruled out when a result looks wrong.
// All are on by default; they change how a result is computed, never what it is (onednn_gemm
// changes the rounding of large products, which OpenBLAS and oneDNN sum in different orders).
#pragma once

#include <atomic>

namespace torchlet {

struct CpuKernels {
  // Convolutions take channels-last input (oneDNN's faster layout for their backward).
  std::atomic<bool> channels_last{true};
  // Batch norm + ReLU (+ dropout) as one kernel; needs channels_last.
  std::atomic<bool> fused_batchnorm{true};
  // Convolution kernels cropped to the taps that reach a small input (conv_crop.h).
  std::atomic<bool> crop_convs{true};
  // Evaluation and prediction through the inference plan (inference.h): each batch norm and
  // ReLU folded into its conv.
  std::atomic<bool> inference_plan{true};
  // Self-attention of short sequences as one kernel per head (attention.h).
  std::atomic<bool> fused_attention{true};
  // SGD's step as one pass over each parameter (sgd_step.h).
  std::atomic<bool> fused_optimizer{true};
  // Large fully connected layers through oneDNN's sgemm (linear.h).
  std::atomic<bool> onednn_gemm{true};
};

CpuKernels& Kernels();

// Whether this CPU runs the AVX2 + FMA builds of the row kernels (batchnorm_act.cc,
// attention.cc); each also has a baseline build.
bool HasAvx2Fma();

// Each switch's JavaScript name (setCpuKernels / getCpuKernels), in one table so that the
// addon's check, reads and writes cannot drift apart.
struct CpuKernelSwitch {
  const char* name;
  std::atomic<bool> CpuKernels::*field;
};
inline constexpr CpuKernelSwitch kCpuKernelSwitches[] = {
    {"channelsLast", &CpuKernels::channels_last},
    {"fusedBatchNorm", &CpuKernels::fused_batchnorm},
    {"cropConvs", &CpuKernels::crop_convs},
    {"inferencePlan", &CpuKernels::inference_plan},
    {"fusedAttention", &CpuKernels::fused_attention},
    {"fusedOptimizer", &CpuKernels::fused_optimizer},
    {"onednnGemm", &CpuKernels::onednn_gemm},
};

}  // namespace torchlet
