#include "onecycle.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace torchlet {

OneCycle::OneCycle(const OneCycleOptions& o) : o_(o) {
  if (o.totalSteps <= 0) throw std::invalid_argument("OneCycleLR total_steps must be a positive integer, got " + std::to_string(o.totalSteps));
  if (!(o.pctStart >= 0 && o.pctStart <= 1)) throw std::invalid_argument("OneCycleLR pct_start must be in [0, 1]");
  if (!(o.maxLr > 0)) throw std::invalid_argument("OneCycleLR max_lr must be positive");
  if (!(o.divFactor > 0) || !(o.finalDivFactor > 0)) throw std::invalid_argument("OneCycleLR div factors must be positive");
  const double initial = o.maxLr / o.divFactor;
  const double min_lr = initial / o.finalDivFactor;
  const double total = static_cast<double>(o.totalSteps);
  if (o.threePhase) {
    phases_ = {
        {o.pctStart * total - 1, initial, o.maxLr, o.maxMomentum, o.baseMomentum},
        {2 * o.pctStart * total - 2, o.maxLr, initial, o.baseMomentum, o.maxMomentum},
        {total - 1, initial, min_lr, o.maxMomentum, o.maxMomentum},
    };
  } else {
    phases_ = {
        {o.pctStart * total - 1, initial, o.maxLr, o.maxMomentum, o.baseMomentum},
        {total - 1, o.maxLr, min_lr, o.baseMomentum, o.maxMomentum},
    };
  }
}

double OneCycle::Anneal(double start, double end, double pct) const {
  if (o_.cosine) {
    const double cos_out = std::cos(M_PI * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
  }
  return (end - start) * pct + start;
}

std::pair<double, double> OneCycle::At(int64_t step) const {
  if (step < 0 || step >= o_.totalSteps) {
    throw std::out_of_range("OneCycleLR was asked for step " + std::to_string(step + 1) + " but total_steps is " +
                            std::to_string(o_.totalSteps) + " (the schedule is longer than planned: check epochs and batch size)");
  }
  const double step_num = static_cast<double>(step);
  double start_step = 0;
  for (size_t i = 0; i < phases_.size(); ++i) {
    const Phase& p = phases_[i];
    if (step_num <= p.end_step || i + 1 == phases_.size()) {
      const double pct = (step_num - start_step) / (p.end_step - start_step);
      const double lr = Anneal(p.start_lr, p.end_lr, pct);
      const double momentum = o_.cycleMomentum ? Anneal(p.start_momentum, p.end_momentum, pct) : o_.maxMomentum;
      return {lr, momentum};
    }
    start_step = p.end_step;
  }
  return {0, 0};  // unreachable: the last phase always matches
}

}  // namespace torchlet
