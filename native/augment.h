// Batched geometric augmentation: torchvision's RandomAffine followed by
// RandomPerspective, composed into one homography per sample and applied with a
// single grid_sample, so each image is resampled once instead of twice.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <random>

namespace torchlet {

// A seedable generator whose state is fully determined by (seed, stream), so an
// epoch's randomness can be recreated exactly on resume.
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  double Uniform(double lo, double hi) { return lo + (hi - lo) * static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  int64_t RandInt(int64_t lo, int64_t hi_exclusive) {
    return lo + static_cast<int64_t>(engine_() % static_cast<uint64_t>(hi_exclusive - lo));
  }
  uint64_t Next() { return engine_(); }

 private:
  std::mt19937_64 engine_;
};

struct AugmentOptions {
  bool enabled = false;
  double degrees = 0;                       // rotation drawn from [-degrees, degrees]
  double translateX = 0, translateY = 0;    // fraction of width / height
  double scaleMin = 1, scaleMax = 1;
  double shearXMin = 0, shearXMax = 0;      // degrees
  double shearYMin = 0, shearYMax = 0;
  double distortion = 0, perspectiveP = 0;  // RandomPerspective(distortion_scale, p)
  double elasticAlpha = 0, elasticSigma = 0;  // ElasticTransform(alpha, sigma); off when alpha is 0
  bool nearest = false;                     // interpolation; bilinear by default
};

// Per-sample 3x3 matrices mapping output pixel coordinates (pixel edges at integers)
// to grid_sample's normalised source coordinates. Exposed for tests.
at::Tensor SampleWarps(int64_t n, int64_t height, int64_t width, const AugmentOptions& o, Rng& rng);

// torchvision's ElasticTransform.get_params from its uniform noise: noise [N, 2, H, W] in
// [-1, 1] (x then y), each plane blurred by gaussian_blur (kernel int(8 sigma + 1) made
// odd, reflect padding) and scaled by alpha / H (x) and alpha / W (y), as torchvision
// does. Returns the displacement [N, H, W, 2] in grid_sample's normalised units. Exposed
// for tests.
at::Tensor ElasticDisplacement(const at::Tensor& noise, double alpha, double sigma);

// Per-sample elastic displacements [N, H, W, 2] drawn from rng, or an undefined tensor
// when o.elasticAlpha is 0.
at::Tensor SampleDisplacements(int64_t n, int64_t height, int64_t width, const AugmentOptions& o, Rng& rng);

// Resamples x (float [N, C, H, W]) through per-sample warps [N, 3, 3] as
// grid_sample(mode, padding 'zeros', align_corners=false) would; fill 0 outside the source.
// With a displacement [N, H, W, 2] (normalised units, may be undefined), each output
// pixel's coordinates move by it before the warp: ElasticTransform applied after the
// affine and perspective, folded into the same single resampling.
// On CPU a direct kernel (libtorch's way, a [N, H*W, 3] matmul through the generic BLAS
// for the grid and then grid_sample, cost several times more); elsewhere grid_sample
// itself (WarpGridSample, also the tests' reference).
at::Tensor Warp(const at::Tensor& x, const at::Tensor& theta, const at::Tensor& displacement, bool nearest);
at::Tensor WarpGridSample(const at::Tensor& x, const at::Tensor& theta, const at::Tensor& displacement, bool nearest);

// x: float [N, C, H, W]; returns the warped batch, fill 0 outside the source.
at::Tensor Augment(const at::Tensor& x, const AugmentOptions& o, Rng& rng);

}  // namespace torchlet
