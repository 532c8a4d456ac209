#include "augment.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace torchlet {

namespace {

using Mat3 = std::array<double, 9>;

Mat3 Mul(const Mat3& a, const Mat3& b) {
  Mat3 c{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) c[i * 3 + j] = a[i * 3] * b[j] + a[i * 3 + 1] * b[3 + j] + a[i * 3 + 2] * b[6 + j];
  return c;
}

// torchvision's _get_inverse_affine_matrix with the centre at the origin: maps
// output coordinates (centred on the image) to input coordinates.
Mat3 InverseAffine(double angle, double tx, double ty, double scale, double shear_x, double shear_y) {
  const double rot = angle * M_PI / 180, sx = shear_x * M_PI / 180, sy = shear_y * M_PI / 180;
  const double a = std::cos(rot - sy) / std::cos(sy);
  const double b = -std::cos(rot - sy) * std::tan(sx) / std::cos(sy) - std::sin(rot);
  const double c = std::sin(rot - sy) / std::cos(sy);
  const double d = -std::sin(rot - sy) * std::tan(sx) / std::cos(sy) + std::cos(rot);
  Mat3 m{d / scale, -b / scale, 0, -c / scale, a / scale, 0, 0, 0, 1};
  m[2] = m[0] * -tx + m[1] * -ty;
  m[5] = m[3] * -tx + m[4] * -ty;
  return m;
}

// Solves for the homography H with H(to[i]) = from[i] (torchvision's
// _get_perspective_coeffs): 8 equations, Gaussian elimination with partial pivoting.
Mat3 Homography(const std::array<std::array<double, 2>, 4>& to, const std::array<std::array<double, 2>, 4>& from) {
  double A[8][9] = {};
  for (int i = 0; i < 4; ++i) {
    const double x = to[i][0], y = to[i][1], u = from[i][0], v = from[i][1];
    double r1[9] = {x, y, 1, 0, 0, 0, -u * x, -u * y, u};
    double r2[9] = {0, 0, 0, x, y, 1, -v * x, -v * y, v};
    for (int j = 0; j < 9; ++j) {
      A[2 * i][j] = r1[j];
      A[2 * i + 1][j] = r2[j];
    }
  }
  for (int col = 0; col < 8; ++col) {
    int pivot = col;
    for (int r = col + 1; r < 8; ++r)
      if (std::fabs(A[r][col]) > std::fabs(A[pivot][col])) pivot = r;
    if (std::fabs(A[pivot][col]) < 1e-12) throw std::runtime_error("degenerate perspective corners");
    for (int j = 0; j < 9; ++j) std::swap(A[col][j], A[pivot][j]);
    for (int r = 0; r < 8; ++r) {
      if (r == col) continue;
      const double f = A[r][col] / A[col][col];
      for (int j = col; j < 9; ++j) A[r][j] -= f * A[col][j];
    }
  }
  Mat3 h{};
  for (int i = 0; i < 8; ++i) h[i] = A[i][8] / A[i][i];
  h[8] = 1;
  return h;
}

}  // namespace

at::Tensor SampleWarps(int64_t n, int64_t height, int64_t width, const AugmentOptions& o, Rng& rng) {
  at::Tensor out = torch::empty({n, 3, 3}, torch::kFloat32);
  float* p = out.data_ptr<float>();
  const double W = static_cast<double>(width), H = static_cast<double>(height);
  // Output coordinates arrive with pixel edges at integers (0..W); move the origin
  // to the centre for the affine part, then scale to grid_sample's [-1, 1].
  const Mat3 to_centre{1, 0, -W / 2, 0, 1, -H / 2, 0, 0, 1};
  const Mat3 normalise{2 / W, 0, 0, 0, 2 / H, 0, 0, 0, 1};
  const Mat3 from_edges_to_centres{1, 0, -0.5, 0, 1, -0.5, 0, 0, 1};
  const Mat3 from_centres_to_edges{1, 0, 0.5, 0, 1, 0.5, 0, 0, 1};
  const int64_t dw = static_cast<int64_t>(o.distortion * static_cast<double>(width / 2));
  const int64_t dh = static_cast<int64_t>(o.distortion * static_cast<double>(height / 2));
  for (int64_t i = 0; i < n; ++i) {
    // Same draws, in the same order, as torchvision's RandomAffine.get_params.
    const double angle = rng.Uniform(-o.degrees, o.degrees);
    const double max_dx = o.translateX * W, max_dy = o.translateY * H;
    const double tx = std::round(rng.Uniform(-max_dx, max_dx));
    const double ty = std::round(rng.Uniform(-max_dy, max_dy));
    const double scale = o.scaleMin == o.scaleMax ? o.scaleMin : rng.Uniform(o.scaleMin, o.scaleMax);
    const double shx = o.shearXMin == o.shearXMax ? o.shearXMin : rng.Uniform(o.shearXMin, o.shearXMax);
    const double shy = o.shearYMin == o.shearYMax ? o.shearYMin : rng.Uniform(o.shearYMin, o.shearYMax);
    Mat3 m = Mul(normalise, Mul(InverseAffine(angle, tx, ty, scale, shx, shy), to_centre));
    if (o.perspectiveP > 0 && rng.Uniform(0, 1) < o.perspectiveP) {
      // RandomPerspective moves each corner (in pixel-centre coordinates) inwards by up
      // to distortion * half the size; the output samples where the corners went.
      const double w1 = W - 1, h1 = H - 1;
      std::array<std::array<double, 2>, 4> start{{{0, 0}, {w1, 0}, {w1, h1}, {0, h1}}};
      std::array<std::array<double, 2>, 4> end{{
          {double(rng.RandInt(0, dw + 1)), double(rng.RandInt(0, dh + 1))},
          {double(rng.RandInt(width - dw - 1, width)), double(rng.RandInt(0, dh + 1))},
          {double(rng.RandInt(width - dw - 1, width)), double(rng.RandInt(height - dh - 1, height))},
          {double(rng.RandInt(0, dw + 1)), double(rng.RandInt(height - dh - 1, height))},
      }};
      Mat3 persp = Mul(from_centres_to_edges, Mul(Homography(end, start), from_edges_to_centres));
      m = Mul(m, persp);
    }
    for (int k = 0; k < 9; ++k) p[i * 9 + k] = static_cast<float>(m[k]);
  }
  return out;
}

namespace {

// torchvision's ElasticTransform blur width: int(8 sigma + 1) taps, made odd. Capped so
// that an absurd sigma fails the size check rather than overflowing.
int64_t BlurTaps(double sigma) {
  int64_t k = static_cast<int64_t>(std::min(std::floor(8 * sigma + 1), 1e9));
  return k % 2 == 0 ? k + 1 : k;
}

// gaussian_blur along one axis of length `size` as a [size, size] matrix: torchvision's
// 1-d kernel over the reflect-padded axis. A blur of each plane is then two small matrix
// products instead of a 41-tap convolution over a padded copy.
at::Tensor BlurOperator(int64_t size, double sigma, const torch::TensorOptions& opts) {
  const int64_t k = BlurTaps(sigma), half = k / 2;
  std::vector<double> taps(static_cast<size_t>(k));
  double total = 0;
  for (int64_t t = 0; t < k; ++t) total += taps[t] = std::exp(-0.5 * std::pow(static_cast<double>(t - half) / sigma, 2));
  at::Tensor m = torch::zeros({size, size}, torch::kFloat64);
  double* mp = m.data_ptr<double>();
  for (int64_t i = 0; i < size; ++i) {
    for (int64_t t = 0; t < k; ++t) {
      int64_t j = i + t - half;
      j = j < 0 ? -j : j >= size ? 2 * (size - 1) - j : j;  // reflect, as torch's pad mode 'reflect'
      mp[i * size + j] += taps[t] / total;
    }
  }
  return m.to(opts);
}

}  // namespace

at::Tensor ElasticDisplacement(const at::Tensor& noise, double alpha, double sigma) {
  const int64_t n = noise.size(0), h = noise.size(2), w = noise.size(3);
  at::Tensor planes = noise.to(at::kFloat).reshape({n * 2, h, w});
  if (sigma > 0) {
    const int64_t k = BlurTaps(sigma);
    if (k / 2 >= h || k / 2 >= w) {
      std::ostringstream msg;
      msg << "augment.elastic.sigma " << sigma << " needs a " << k << "-pixel blur, whose reflect padding (" << k / 2
          << ") must be smaller than the image (" << h << "x" << w << ")";
      throw std::invalid_argument(msg.str());
    }
    // torchvision's 2-d kernel is the outer product of the 1-d one with itself, so blurring
    // the columns and then the rows gives the same sums (up to rounding).
    auto opts = planes.options();
    planes = torch::matmul(torch::matmul(BlurOperator(h, sigma, opts), planes), BlurOperator(w, sigma, opts).t());
  }
  at::Tensor d = planes.view({n, 2, h, w});
  at::Tensor scale = torch::tensor({alpha / static_cast<double>(h), alpha / static_cast<double>(w)}, d.options()).view({1, 2, 1, 1});
  return d.mul(scale).permute({0, 2, 3, 1}).contiguous();
}

at::Tensor SampleDisplacements(int64_t n, int64_t height, int64_t width, const AugmentOptions& o, Rng& rng) {
  if (o.elasticAlpha == 0) return at::Tensor();
  at::Tensor noise = torch::empty({n, 2, height, width}, torch::kFloat32);
  float* p = noise.data_ptr<float>();
  // Two 24-bit uniforms from each 64-bit draw: a float holds no more, and the draws were a
  // third of the elastic warp's cost one at a time.
  const int64_t count = noise.numel();
  for (int64_t i = 0; i < count; i += 2) {
    const uint64_t bits = rng.Next();
    p[i] = static_cast<float>(bits >> 40) * 0x1.0p-23f - 1.0f;
    if (i + 1 < count) p[i + 1] = static_cast<float>((bits >> 16) & 0xFFFFFF) * 0x1.0p-23f - 1.0f;
  }
  return ElasticDisplacement(noise, o.elasticAlpha, o.elasticSigma);
}

at::Tensor Warp(const at::Tensor& x, const at::Tensor& theta, const at::Tensor& displacement, bool nearest) {
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat) {
    return WarpGridSample(x, theta.to(x.device()), displacement, nearest);
  }
  at::Tensor src = x.contiguous();
  const int64_t n = src.size(0), channels = src.size(1), h = src.size(2), w = src.size(3);
  at::Tensor out = torch::empty_like(src);
  at::Tensor t = theta.to(at::kFloat).contiguous();
  at::Tensor disp = displacement.defined() ? displacement.to(at::kFloat).contiguous() : displacement;
  const float* in = src.data_ptr<float>();
  const float* tp = t.data_ptr<float>();
  const float* dp = disp.defined() ? disp.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  const double W = static_cast<double>(w), H = static_cast<double>(h);
  at::parallel_for(0, n, std::max<int64_t>(1, 4096 / (h * w)), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      // grid_sample's unnormalisation with align_corners=false, ((u + 1) * W - 1) / 2, is
      // affine, so it folds into the homography: m maps output pixel edges straight to
      // source pixel centres.
      const float* m = tp + b * 9;
      const double m0 = W / 2 * m[0] + (W - 1) / 2 * m[6], m1 = W / 2 * m[1] + (W - 1) / 2 * m[7], m2 = W / 2 * m[2] + (W - 1) / 2 * m[8];
      const double m3 = H / 2 * m[3] + (H - 1) / 2 * m[6], m4 = H / 2 * m[4] + (H - 1) / 2 * m[7], m5 = H / 2 * m[5] + (H - 1) / 2 * m[8];
      const double m6 = m[6], m7 = m[7], m8 = m[8];
      for (int64_t i = 0; i < h; ++i) {
        for (int64_t j = 0; j < w; ++j) {
          double px = static_cast<double>(j) + 0.5, py = static_cast<double>(i) + 0.5;
          if (dp != nullptr) {
            // A normalised displacement of d moves d * size / 2 pixels.
            const float* d = dp + ((b * h + i) * w + j) * 2;
            px += d[0] * W / 2;
            py += d[1] * H / 2;
          }
          const double z = m6 * px + m7 * py + m8;
          const double ix = (m0 * px + m1 * py + m2) / z, iy = (m3 * px + m4 * py + m5) / z;
          const int64_t at = i * w + j;
          if (nearest) {
            const double rx = std::nearbyint(ix), ry = std::nearbyint(iy);
            const bool inside = rx >= 0 && rx < W && ry >= 0 && ry < H;
            const int64_t k = inside ? static_cast<int64_t>(ry) * w + static_cast<int64_t>(rx) : 0;
            for (int64_t c = 0; c < channels; ++c) op[(b * channels + c) * h * w + at] = inside ? in[(b * channels + c) * h * w + k] : 0.0f;
            continue;
          }
          const double fx = std::floor(ix), fy = std::floor(iy);
          const double wx = ix - fx, wy = iy - fy;
          const int64_t x0 = static_cast<int64_t>(fx), y0 = static_cast<int64_t>(fy);
          // Bilinear taps; those outside the image read as zero (padding_mode 'zeros').
          const int64_t xs[2] = {x0, x0 + 1}, ys[2] = {y0, y0 + 1};
          const double wxs[2] = {1 - wx, wx}, wys[2] = {1 - wy, wy};
          for (int64_t c = 0; c < channels; ++c) {
            const float* plane = in + (b * channels + c) * h * w;
            double v = 0;
            for (int dy = 0; dy < 2; ++dy) {
              if (ys[dy] < 0 || ys[dy] >= h) continue;
              for (int dx = 0; dx < 2; ++dx) {
                if (xs[dx] < 0 || xs[dx] >= w) continue;
                v += wys[dy] * wxs[dx] * plane[ys[dy] * w + xs[dx]];
              }
            }
            op[(b * channels + c) * h * w + at] = static_cast<float>(v);
          }
        }
      }
    }
  });
  return out;
}

at::Tensor WarpGridSample(const at::Tensor& x, const at::Tensor& theta, const at::Tensor& displacement, bool nearest) {
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  // Output pixel centres in edge coordinates, homogeneous: [H*W, 3].
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(x.device());
  at::Tensor ys = torch::arange(h, opts).add_(0.5);
  at::Tensor xs = torch::arange(w, opts).add_(0.5);
  auto mesh = torch::meshgrid({ys, xs}, "ij");
  at::Tensor base = torch::stack({mesh[1].reshape(-1), mesh[0].reshape(-1), torch::ones({h * w}, opts)}, 1).unsqueeze(0);
  if (displacement.defined()) {
    at::Tensor pixels = displacement.to(opts).reshape({n, h * w, 2}) * torch::tensor({w / 2.0, h / 2.0}, opts);
    base = base + torch::cat({pixels, torch::zeros({n, h * w, 1}, opts)}, 2);
  }
  at::Tensor src = torch::matmul(base, theta.transpose(1, 2));  // [N, H*W, 3]
  at::Tensor grid = src.narrow(2, 0, 2) / src.narrow(2, 2, 1);
  namespace F = torch::nn::functional;
  F::GridSampleFuncOptions::mode_t mode = torch::kBilinear;
  if (nearest) mode = torch::kNearest;
  return F::grid_sample(x, grid.view({n, h, w, 2}),
                        F::GridSampleFuncOptions().mode(mode).padding_mode(torch::kZeros).align_corners(false));
}

at::Tensor Augment(const at::Tensor& x, const AugmentOptions& o, Rng& rng) {
  at::Tensor theta = SampleWarps(x.size(0), x.size(2), x.size(3), o, rng);
  return Warp(x, theta, SampleDisplacements(x.size(0), x.size(2), x.size(3), o, rng), o.nearest);
}

}  // namespace torchlet
