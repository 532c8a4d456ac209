// Optimizers (Adam, AdamW, SGD, RMSprop: libtorch's own, whose updates are PyTorch's) and
// their options and schedules as read from JavaScript.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "schedule.h"

namespace torchlet {

struct OptimizerOptions {
  std::string type = "adamw";  // adam | adamw | sgd | rmsprop
  double lr = 1e-3, weightDecay = 0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam, adamw (eps: rmsprop too)
  bool amsgrad = false;
  double momentum = 0, dampening = 0;  // sgd (momentum: rmsprop too)
  bool nesterov = false;
  double alpha = 0.99;  // rmsprop
  bool centered = false;
};

OptimizerOptions ParseOptimizer(const Napi::Object& o);
// `scheduler` options; OneCycleLR's keys as oneCycleSchedule takes them.
ScheduleOptions ParseSchedule(const Napi::Object& s);
OneCycleOptions ParseOneCycle(const Napi::Object& s);

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const std::vector<at::Tensor>& params, const OptimizerOptions& o);

// Sets every group's lr and, unless `momentum` is NaN, the momentum a schedule cycles:
// beta1 for Adam and AdamW, momentum for SGD and RMSprop (as OneCycleLR does).
void SetLrMomentum(torch::optim::Optimizer& opt, const std::string& type, double lr, double momentum);

// lrSchedule(schedulerOptions, baseLr, count, metrics?): { lr, momentum } for indices
// 0..count-1; with metrics, a plateau schedule observes metrics[i] after index i. For tests.
Napi::Value LrScheduleProbe(const Napi::CallbackInfo& info);
// optimizerSteps({ optimizer, scheduler?, params, grads, metrics? }): the parameters after
// each of grads.length / params.length steps, each step taking its slice of `grads` as the
// gradient and the lr (and momentum) the schedule gives. For tests against PyTorch.
Napi::Value OptimizerStepsProbe(const Napi::CallbackInfo& info);

}  // namespace torchlet
