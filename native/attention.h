// Scaled dot-product self-attention as one CPU kernel, for the short sequences of a small
// ViT (17 tokens of 16-wide heads): libtorch runs each head's 17x17 products as a batched
// matmul whose per-matrix overhead made it a third of PyTorch's ViT evaluation time (its
// profiler, one thread). This kernel reads q, k and v straight from in_proj's packed output
// and writes the heads side by side, the layout out_proj reads, so no permute is copied.
#pragma once

#include <torch/torch.h>

namespace torchlet {

// qkv: [N, T, 3 * D], nn.MultiheadAttention's in_proj output (q, k, v, each D = heads * hd).
bool CanFuseAttention(const at::Tensor& qkv, int64_t heads);

// [N, queries, D]: softmax(q k^T / sqrt(hd)) v per head for the first `queries` tokens' rows
// (all T of them attend to every token), with dropout p on the attention weights (0 in eval).
// Differentiable with respect to qkv.
at::Tensor FusedAttention(const at::Tensor& qkv, int64_t heads, double p, int64_t queries);

}  // namespace torchlet
