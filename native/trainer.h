// Trainer: optimizer, learning-rate schedule and loss for one model; a whole epoch runs in one
// native call on a worker thread, reporting progress back to JS.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>

#include "augment.h"
#include "model.h"
#include "optim.h"
#include "schedule.h"
#include "state_dict.h"

namespace torchlet {

struct TrainOptions {
  OptimizerOptions optimizer;
  std::optional<ScheduleOptions> schedule;
  std::string loss = "nll";
  double labelSmoothing = 0;
  // Decay of the exponential moving average of the weights; 0 keeps none.
  double emaDecay = 0;
  // After each epoch, replace batch norm's running statistics with their plain average over
  // the clean training images (PyTorch's swa_utils.update_bn).
  bool recalibrateBatchNorm = false;
  int64_t batchSize = 128;
  uint64_t seed = 42;
  AugmentOptions augment;
};

class Trainer : public Napi::ObjectWrap<Trainer> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Trainer(const Napi::CallbackInfo& info);

  // Runs on a worker thread. `report` is called every few steps with (steps done, running loss, running accuracy).
  struct EpochResult {
    double loss = 0, accuracy = 0, lr = 0, seconds = 0;
    int64_t steps = 0, samples = 0;
  };
  template <typename Report>
  EpochResult RunEpoch(const at::Tensor& images, const at::Tensor& labels, int64_t epoch, Report&& report, const std::atomic<bool>& cancel);

  Model* GetModel() { return model_; }

 private:
  Napi::Value TrainEpoch(const Napi::CallbackInfo& info);
  Napi::Value SaveState(const Napi::CallbackInfo& info);
  Napi::Value LoadState(const Napi::CallbackInfo& info);
  Napi::Value GetStep(const Napi::CallbackInfo& info);
  Napi::Value GetLr(const Napi::CallbackInfo& info);
  Napi::Value Observe(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value SwapEma(const Napi::CallbackInfo& info);

  // Folds the model's current state into the average, after each optimizer step.
  void UpdateEma();
  // update_bn over `images` (uint8, in order, in training batches), without gradients.
  void RecalibrateBatchNorm(const at::Tensor& images);

  // The schedule's index for the next step of `epoch`: the step count, or the epoch.
  int64_t ScheduleIndex(int64_t epoch) const { return schedule_ && schedule_->PerStep() ? step_ : epoch; }
  // Sets the optimizer's lr (and momentum) for the next step; returns that lr.
  double ApplySchedule(int64_t epoch);
  torch::optim::Optimizer& Optim();

  Model* model_ = nullptr;
  Napi::ObjectReference model_ref_;
  TrainOptions o_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<Schedule> schedule_;
  int64_t step_ = 0;
  int64_t epoch_ = 0;  // the epoch the next trainEpoch is expected to run, for `lr`
  // The averaged state, entry for entry as StateDict(model); empty without EMA.
  NamedTensors ema_;
  // True while swapEma() has put the averaged weights into the model.
  bool ema_swapped_ = false;
};

// oneCycleSchedule(options, steps): [lr[], momentum[]] for steps 0..steps-1, for tests.
Napi::Value OneCycleSchedule(const Napi::CallbackInfo& info);
// sampleWarps(augmentOptions, n, height, width, seed): Float32Array of n 3x3 matrices, for tests.
Napi::Value AugmentBatch(const Napi::CallbackInfo& info);

}  // namespace torchlet
