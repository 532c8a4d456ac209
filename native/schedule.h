// Learning-rate schedules, computed exactly as PyTorch 1.13's torch.optim.lr_scheduler
// computes them. PyTorch's step() uses each scheduler's recursive ("chainable") form,
// lr_t = f(lr_{t-1}), not the closed form, and the two differ in the last bits; so do
// we: the recursive values are replayed from index 0 and cached, which also makes a
// resumed run see the same values as one that never stopped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "onecycle.h"

namespace torchlet {

struct ScheduleOptions {
  // onecycle | constant | step | multistep | exponential | cosine | plateau
  std::string type = "constant";
  // Stepped after every batch (true) or after every epoch (false), as the PyTorch loop would.
  bool perStep = false;
  OneCycleOptions onecycle;
  // constant: PyTorch's ConstantLR (factor 1 means no change at all)
  double factor = 1;
  int64_t totalIters = 0;
  // step / multistep / exponential
  int64_t stepSize = 1;
  double gamma = 0.1;
  std::vector<int64_t> milestones;
  // cosine
  int64_t tMax = 1;
  double etaMin = 0;
  // plateau (ReduceLROnPlateau; `factor` above is not used, `plateauFactor` is)
  bool maximize = false;
  double plateauFactor = 0.1;
  int64_t patience = 10;
  double threshold = 1e-4;
  bool relative = true;
  int64_t cooldown = 0;
  double minLr = 0;
  double plateauEps = 1e-8;
};

// Throws std::invalid_argument naming the bad option, with PyTorch's rules.
void ValidateSchedule(const ScheduleOptions& o);

class Schedule {
 public:
  Schedule(const ScheduleOptions& o, double base_lr);
  const ScheduleOptions& Options() const { return o_; }
  bool PerStep() const { return o_.perStep; }
  // How many indices the schedule defines (OneCycleLR's total_steps), or -1 for no limit.
  int64_t Limit() const { return o_.type == "onecycle" ? o_.onecycle.totalSteps : -1; }
  // lr and momentum for 0-based index `i` (a step or an epoch); momentum is NaN when the
  // schedule leaves the optimizer's momentum alone (every schedule but OneCycleLR).
  std::pair<double, double> At(int64_t i);
  double Lr(int64_t i) { return At(i).first; }
  // ReduceLROnPlateau: the metric at the end of an epoch (PyTorch's scheduler.step(metric)).
  void Observe(double metric);
  // ReduceLROnPlateau's mutable state, for checkpoints; empty for the others, which are
  // pure functions of the index.
  std::vector<double> State() const;
  void Restore(const std::vector<double>& state);

 private:
  double Next(int64_t i, double prev) const;

  ScheduleOptions o_;
  double base_;
  std::optional<OneCycle> onecycle_;
  std::vector<double> lrs_;  // the recursive schedules, replayed from index 0
  // ReduceLROnPlateau
  double lr_ = 0, best_ = 0;
  int64_t bad_epochs_ = 0, cooldown_counter_ = 0, last_epoch_ = 0;
};

}  // namespace torchlet
