#include "schedule.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace torchlet {

namespace {
const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Python's % on integers: the result takes the sign of the divisor.
int64_t PyMod(int64_t a, int64_t m) { return ((a % m) + m) % m; }
}  // namespace

void ValidateSchedule(const ScheduleOptions& o) {
  auto bad = [](const std::string& m) { throw std::invalid_argument("scheduler." + m); };
  const std::string& t = o.type;
  if (t != "onecycle" && t != "constant" && t != "step" && t != "multistep" && t != "exponential" && t != "cosine" && t != "plateau") {
    bad("type must be one of onecycle, constant, step, multistep, exponential, cosine, plateau; got '" + t + "'");
  }
  if (t == "constant" && !(o.factor > 0 && o.factor <= 1)) bad("factor must be within (0, 1] (PyTorch's ConstantLR)");
  if (t == "constant" && o.totalIters < 0) bad("totalIters must be >= 0");
  if (t == "step" && o.stepSize <= 0) bad("stepSize must be a positive integer");
  if ((t == "step" || t == "multistep" || t == "exponential") && !(o.gamma > 0)) bad("gamma must be positive");
  if (t == "multistep") {
    if (o.milestones.empty()) bad("milestones must hold at least one index");
    for (size_t i = 0; i < o.milestones.size(); ++i) {
      if (o.milestones[i] <= 0) bad("milestones must be positive integers");
      if (i > 0 && o.milestones[i] < o.milestones[i - 1]) bad("milestones must be increasing");
    }
  }
  if (t == "cosine" && o.tMax <= 0) bad("tMax must be a positive integer");
  if (t == "cosine" && !(o.etaMin >= 0)) bad("etaMin must be >= 0");
  if (t == "plateau") {
    if (o.perStep) bad("interval must be 'epoch' for plateau: it steps on an epoch's metric");
    if (!(o.plateauFactor > 0 && o.plateauFactor < 1)) bad("factor must be within (0, 1) for plateau");
    if (o.patience < 0 || o.cooldown < 0) bad("patience and cooldown must be >= 0");
    if (!(o.threshold >= 0) || !(o.minLr >= 0) || !(o.plateauEps >= 0)) bad("threshold, minLr and eps must be >= 0");
  }
}

Schedule::Schedule(const ScheduleOptions& o, double base_lr) : o_(o), base_(base_lr) {
  ValidateSchedule(o);
  if (!(base_lr > 0)) throw std::invalid_argument("the optimizer's lr must be positive");
  if (o.type == "onecycle") onecycle_.emplace(o.onecycle);
  lr_ = base_lr;
  best_ = o.maximize ? -kInf : kInf;
}

// PyTorch 1.13's get_lr() for index i >= 1, given the lr at i - 1; the same operations in
// the same order, so the doubles agree bit for bit.
double Schedule::Next(int64_t i, double prev) const {
  const std::string& t = o_.type;
  if (t == "constant") {
    if (i != o_.totalIters) return prev;
    return prev * (1.0 / o_.factor);
  }
  if (t == "step") return i % o_.stepSize != 0 ? prev : prev * o_.gamma;
  if (t == "multistep") {
    const auto count = std::count(o_.milestones.begin(), o_.milestones.end(), i);
    return count == 0 ? prev : prev * std::pow(o_.gamma, static_cast<double>(count));
  }
  if (t == "exponential") return prev * o_.gamma;
  // cosine
  const double T = static_cast<double>(o_.tMax), e = static_cast<double>(i);
  if (PyMod(i - 1 - o_.tMax, 2 * o_.tMax) == 0) return prev + (base_ - o_.etaMin) * (1 - std::cos(M_PI / T)) / 2;
  return (1 + std::cos(M_PI * e / T)) / (1 + std::cos(M_PI * (e - 1) / T)) * (prev - o_.etaMin) + o_.etaMin;
}

std::pair<double, double> Schedule::At(int64_t i) {
  if (i < 0) throw std::out_of_range("a schedule index must be >= 0");
  if (onecycle_) {
    auto [lr, momentum] = onecycle_->At(i);
    return {lr, o_.onecycle.cycleMomentum ? momentum : kNaN};
  }
  if (o_.type == "plateau") return {lr_, kNaN};
  if (lrs_.empty()) lrs_.push_back(o_.type == "constant" ? base_ * o_.factor : base_);
  while (static_cast<int64_t>(lrs_.size()) <= i) lrs_.push_back(Next(static_cast<int64_t>(lrs_.size()), lrs_.back()));
  return {lrs_[static_cast<size_t>(i)], kNaN};
}

void Schedule::Observe(double current) {
  if (o_.type != "plateau") throw std::logic_error("only the plateau schedule takes a metric");
  if (std::isnan(current)) throw std::invalid_argument("the plateau schedule was given a NaN metric");
  last_epoch_ += 1;
  bool better;
  if (!o_.maximize && o_.relative) {
    better = current < best_ * (1. - o_.threshold);
  } else if (!o_.maximize) {
    better = current < best_ - o_.threshold;
  } else if (o_.relative) {
    better = current > best_ * (o_.threshold + 1.);
  } else {
    better = current > best_ + o_.threshold;
  }
  if (better) {
    best_ = current;
    bad_epochs_ = 0;
  } else {
    bad_epochs_ += 1;
  }
  if (cooldown_counter_ > 0) {
    cooldown_counter_ -= 1;
    bad_epochs_ = 0;
  }
  if (bad_epochs_ > o_.patience) {
    const double new_lr = std::max(lr_ * o_.plateauFactor, o_.minLr);
    if (lr_ - new_lr > o_.plateauEps) lr_ = new_lr;
    cooldown_counter_ = o_.cooldown;
    bad_epochs_ = 0;
  }
}

std::vector<double> Schedule::State() const {
  if (o_.type != "plateau") return {};
  return {lr_, best_, static_cast<double>(bad_epochs_), static_cast<double>(cooldown_counter_), static_cast<double>(last_epoch_)};
}

void Schedule::Restore(const std::vector<double>& s) {
  if (o_.type != "plateau") {
    if (!s.empty()) throw std::invalid_argument("the checkpoint holds plateau-schedule state but this run's schedule is '" + o_.type + "'");
    return;
  }
  if (s.size() != 5) throw std::invalid_argument("the checkpoint holds no plateau-schedule state (it was written with another schedule)");
  lr_ = s[0];
  best_ = s[1];
  bad_epochs_ = static_cast<int64_t>(s[2]);
  cooldown_counter_ = static_cast<int64_t>(s[3]);
  last_epoch_ = static_cast<int64_t>(s[4]);
}

}  // namespace torchlet
