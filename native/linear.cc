#include "linear.h"

#include <dlfcn.h>

#include <vector>

#include "cpu_kernels.h"

namespace torchlet {

namespace {

// dnnl_sgemm from oneDNN's C API (dnnl.h): row-major C = alpha op(A) op(B) + beta C,
// returning dnnl_success (0) or an error status. It is looked up in the copy libtorch
// already loaded, rather than linked, so the addon needs no oneDNN headers and still builds
// against a libtorch that carries oneDNN inside itself (then at::linear does the work). The
// handle is never closed: it only pins a library that libtorch keeps loaded anyway.
using SgemmFn = int (*)(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                        const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

SgemmFn FindSgemm() {
  for (const char* name : {"libdnnl.so.2", "libdnnl.so.3"}) {
    void* lib = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
    if (lib == nullptr) continue;
    if (void* fn = dlsym(lib, "dnnl_sgemm")) return reinterpret_cast<SgemmFn>(fn);
  }
  return nullptr;
}

SgemmFn Sgemm() {
  static const SgemmFn fn = FindSgemm();
  return fn;
}

// Row-major C [m, n] = op(A) op(B) + beta C, where op transposes when its flag is 'T'. With
// beta 0 oneDNN never reads C, so C may come from at::empty.
void Gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const at::Tensor& a, const at::Tensor& b, float beta, at::Tensor& c) {
  const int64_t lda = ta == 'N' ? k : m, ldb = tb == 'N' ? n : k;
  const int status = Sgemm()(ta, tb, m, n, k, 1.0f, a.data_ptr<float>(), lda, b.data_ptr<float>(), ldb, beta, c.data_ptr<float>(), n);
  TORCH_CHECK(status == 0, "oneDNN's sgemm failed with status ", status, " on [", m, ", ", k, "] x [", k, ", ", n, "]");
}

// x [rows, in] and weight [out, in], both contiguous.
struct OneDnnLinearFn : public torch::autograd::Function<OneDnnLinearFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
    ctx->save_for_backward({x, weight});
    const int64_t rows = x.size(0), in = x.size(1), out = weight.size(0);
    at::Tensor y;
    if (bias.defined()) {
      y = bias.expand({rows, out}).contiguous();
    } else {
      y = at::empty({rows, out}, x.options());
    }
    Gemm('N', 'T', rows, out, in, x, weight, bias.defined() ? 1.0f : 0.0f, y);
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor go = grads[0].contiguous();
    const int64_t rows = x.size(0), in = x.size(1), out = weight.size(0);
    at::Tensor gx, gw, gb;
    if (ctx->needs_input_grad(0)) {
      gx = at::empty({rows, in}, x.options());
      Gemm('N', 'N', rows, in, out, go, weight, 0.0f, gx);
    }
    if (ctx->needs_input_grad(1)) {
      gw = at::empty({out, in}, weight.options());
      Gemm('T', 'N', out, in, rows, go, x, 0.0f, gw);
    }
    if (ctx->needs_input_grad(2)) gb = go.sum(0);
    return {gx, gw, gb};
  }
};

bool UsesOneDnn(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (!Kernels().onednn_gemm || Sgemm() == nullptr || x.dim() < 1 || weight.dim() != 2) return false;
  for (const at::Tensor* t : {&x, &weight, &bias}) {
    if (t->defined() && (!t->device().is_cpu() || t->scalar_type() != at::kFloat || t->layout() != at::kStrided)) return false;
  }
  // Each of x's numel / in rows takes in x out multiply-adds.
  return x.size(-1) == weight.size(1) && x.numel() * weight.size(0) >= kOneDnnMinMacs;
}

}  // namespace

bool HasOneDnnSgemm() { return Sgemm() != nullptr; }

at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (!UsesOneDnn(x, weight, bias)) return at::linear(x, weight, bias);
  const int64_t in = weight.size(1);
  at::Tensor rows = x.reshape({-1, in}).contiguous();
  at::Tensor y = OneDnnLinearFn::apply(rows, weight.contiguous(), bias.defined() ? bias.contiguous() : bias);
  if (x.dim() == 2) return y;
  std::vector<int64_t> sizes = x.sizes().vec();
  sizes.back() = weight.size(0);
  return y.view(sizes);
}

}  // namespace torchlet
