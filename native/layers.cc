#include "layers.h"

#include <cmath>

#include "attention.h"
#include "dropout.h"
#include "errors.h"

namespace torchlet {

void ResidualImpl::Wire(Sequential main, torch::nn::AnyModule shortcut) {
  main_ = std::move(main);
  shortcut_ = std::move(shortcut);
}

at::Tensor ResidualImpl::forward(at::Tensor x) {
  at::Tensor out = main_->forward(x);
  at::Tensor skip = shortcut_.is_empty() ? x : shortcut_.forward(x);
  if (out.sizes() != skip.sizes()) {
    throw RangeError(spec_->path + " (residual): the main path gives " + ShapeString(out.sizes()) + " but the " +
                     (shortcut_.is_empty() ? std::string("identity shortcut") : "shortcut " + spec_->shortcut[0].path) + " gives " +
                     ShapeString(skip.sizes()) + "; give the residual a shortcut that matches its main path");
  }
  return out + skip;
}

at::Tensor ScaleImpl::forward(at::Tensor x) {
  at::Tensor s = branch_->forward(x);
  if (s.dim() != x.dim() || s.size(0) != x.size(0) || (x.dim() > 1 && s.size(1) != x.size(1))) {
    throw RangeError(spec_->path + " (scale): the branch gives " + ShapeString(s.sizes()) + ", which cannot scale the channels of " +
                     ShapeString(x.sizes()));
  }
  return x * s;
}

at::Tensor ActivationImpl::forward(at::Tensor x) {
  switch (act_) {
    case Act::kRelu6:
      return at::hardtanh(x, 0.0, 6.0);
    case Act::kHardswish:
      return at::hardswish(x);
    case Act::kHardsigmoid:
      return at::hardsigmoid(x);
    case Act::kSilu:
      return at::silu(x);
    case Act::kGelu:
      return at::gelu(x);
    case Act::kSigmoid:
      return at::sigmoid(x);
  }
  return x;
}

at::Tensor StochasticDepthImpl::forward(at::Tensor x) {
  if (!is_training() || p_ == 0) return x;
  const double survival = 1.0 - p_;
  std::vector<int64_t> size(static_cast<size_t>(x.dim()), 1);
  if (row_) size[0] = x.size(0);
  at::Tensor noise = at::empty(size, x.options()).bernoulli_(survival);
  if (survival > 0) noise.div_(survival);
  return x * noise;
}

at::Tensor ReshapeImpl::forward(at::Tensor x) {
  std::vector<int64_t> shape{x.size(0)};
  shape.insert(shape.end(), shape_.begin(), shape_.end());
  return x.reshape(shape);
}

at::Tensor TokenImpl::forward(at::Tensor x) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == token_.size(2), "a token of width ", token_.size(2), " needs input [batch, tokens, ",
              token_.size(2), "]");
  return at::cat({token_.expand({x.size(0), -1, -1}), x}, 1);
}

at::Tensor PositionEmbeddingImpl::forward(at::Tensor x) {
  TORCH_CHECK(x.dim() == 3 && x.size(1) == embedding_.size(1) && x.size(2) == embedding_.size(2), "the position embedding is ",
              ShapeString(embedding_.sizes()), " and needs input [batch, ", embedding_.size(1), ", ", embedding_.size(2), "]");
  return x + embedding_;
}

MultiheadAttentionImpl::MultiheadAttentionImpl(int64_t dim, int64_t heads, double dropout, bool bias)
    : dim_(dim), heads_(heads), dropout_(dropout) {
  // nn.MultiheadAttention's initialisation: Xavier-uniform projections, zero biases.
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * dim, dim}));
  torch::nn::init::xavier_uniform_(in_proj_weight);
  if (bias) {
    in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * dim}));
  }
  out_proj = register_module("out_proj", FastLinear(torch::nn::LinearOptions(dim, dim).bias(bias)));
  if (bias) {
    torch::NoGradGuard no_grad;
    out_proj->bias.zero_();
  }
}

at::Tensor MultiheadAttentionImpl::forward(at::Tensor x) { return Attend(x, x.dim() == 3 ? x.size(1) : 0); }

at::Tensor MultiheadAttentionImpl::Attend(const at::Tensor& x, int64_t queries) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == dim_, "self-attention of width ", dim_, " needs input [batch, tokens, ", dim_, "]");
  const int64_t n = x.size(0), t = x.size(1), hd = dim_ / heads_;
  at::Tensor packed = Linear(x, in_proj_weight, in_proj_bias);
  const double p = is_training() ? dropout_ : 0.0;
  if (CanFuseAttention(packed, heads_)) return out_proj->forward(FusedAttention(packed, heads_, p, queries));
  at::Tensor qkv = packed.view({n, t, 3, heads_, hd}).permute({2, 0, 3, 1, 4});
  at::Tensor q = qkv[0].narrow(2, 0, queries) * (1.0 / std::sqrt(static_cast<double>(hd)));
  at::Tensor attn = at::softmax(at::matmul(q, qkv[1].transpose(-2, -1)), -1);
  // The fused kernel's masks: the same element of [N, H, queries, T] draws the same way.
  attn = TrainingDropout(attn, p);
  return out_proj->forward(at::matmul(attn, qkv[2]).transpose(1, 2).reshape({n, queries, dim_}));
}

TransformerEncoderLayerImpl::TransformerEncoderLayerImpl(const LayerSpec& s) : spec_(&s) {
  namespace nn = torch::nn;
  // Registered in nn.TransformerEncoderLayer's order, so state_dicts list the same keys.
  self_attn = register_module("self_attn", MultiheadAttention(s.in, s.heads, s.p, true));
  linear1 = register_module("linear1", FastLinear(s.in, s.feedforward));
  dropout = nn::AnyModule(FastDropout(s.p));
  register_module("dropout", dropout.ptr());
  linear2 = register_module("linear2", FastLinear(s.feedforward, s.in));
  norm1 = register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({s.in}).eps(s.eps)));
  norm2 = register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({s.in}).eps(s.eps)));
  dropout1 = nn::AnyModule(FastDropout(s.p));
  register_module("dropout1", dropout1.ptr());
  dropout2 = nn::AnyModule(FastDropout(s.p));
  register_module("dropout2", dropout2.ptr());
}

at::Tensor TransformerEncoderLayerImpl::FeedForward(const at::Tensor& x) {
  at::Tensor h = linear1->forward(x);
  h = spec_->activation == "gelu" ? at::gelu(h) : at::relu(h);
  return linear2->forward(dropout.forward(h));
}

at::Tensor TransformerEncoderLayerImpl::forward(at::Tensor x) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == spec_->in, "a transformer encoder layer of width ", spec_->in, " needs input [batch, tokens, ",
              spec_->in, "]");
  // Every token is a key and a value; the rows computed are all of them, or token 0's alone
  // where only that one is read ([N, 1, D]).
  const int64_t rows = spec_->firstTokenOnly ? 1 : x.size(1);
  const at::Tensor queries = x.narrow(1, 0, rows);
  if (spec_->normFirst) {
    at::Tensor y = queries + dropout1.forward(self_attn->Attend(norm1->forward(x), rows));
    return y + dropout2.forward(FeedForward(norm2->forward(y)));
  }
  at::Tensor y = norm1->forward(queries + dropout1.forward(self_attn->Attend(x, rows)));
  return norm2->forward(y + dropout2.forward(FeedForward(y)));
}

namespace {

struct FlattenChannelsLastFn : public torch::autograd::Function<FlattenChannelsLastFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    ctx->saved_data["sizes"] = x.sizes().vec();
    return x.flatten(1);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    return {grads[0].reshape(ctx->saved_data["sizes"].toIntVector()).contiguous(at::MemoryFormat::ChannelsLast)};
  }
};

}  // namespace

at::Tensor FlattenChannelsLast(const at::Tensor& x) { return FlattenChannelsLastFn::apply(x); }

}  // namespace torchlet
