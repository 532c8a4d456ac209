// OneCycleLR, computed exactly as PyTorch 1.13's torch.optim.lr_scheduler.OneCycleLR
// (same phases, same floating-point operations in the same order).
#pragma once

#include <cstdint>
#include <vector>

namespace torchlet {

struct OneCycleOptions {
  double maxLr = 0.01;
  int64_t totalSteps = 0;
  double pctStart = 0.3;
  bool cosine = true;
  double divFactor = 25;
  double finalDivFactor = 1e4;
  bool threePhase = false;
  bool cycleMomentum = true;
  double baseMomentum = 0.85;
  double maxMomentum = 0.95;
};

class OneCycle {
 public:
  explicit OneCycle(const OneCycleOptions& o);
  // Learning rate and momentum (beta1 for Adam/AdamW) to use for 0-based step `step`.
  double Lr(int64_t step) const { return At(step).first; }
  std::pair<double, double> At(int64_t step) const;
  const OneCycleOptions& Options() const { return o_; }

 private:
  struct Phase {
    double end_step, start_lr, end_lr, start_momentum, end_momentum;
  };
  double Anneal(double start, double end, double pct) const;
  OneCycleOptions o_;
  std::vector<Phase> phases_;
};

}  // namespace torchlet
