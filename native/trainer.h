// Trainer: optimizer, OneCycleLR and loss for one model; a whole epoch runs in one
// native call on a worker thread, reporting progress back to JS.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>

#include "augment.h"
#include "model.h"
#include "onecycle.h"

namespace torchlet {

struct TrainOptions {
  std::string optimizer = "adamw";
  double lr = 1e-3, weightDecay = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double momentum = 0, dampening = 0;
  bool nesterov = false;
  std::optional<OneCycleOptions> schedule;
  std::string loss = "nll";
  double labelSmoothing = 0;
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
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  void ApplySchedule();
  torch::optim::Optimizer& Optim();

  Model* model_ = nullptr;
  Napi::ObjectReference model_ref_;
  TrainOptions o_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<OneCycle> schedule_;
  int64_t step_ = 0;
};

// oneCycleSchedule(options, steps): [lr[], momentum[]] for steps 0..steps-1, for tests.
Napi::Value OneCycleSchedule(const Napi::CallbackInfo& info);
// sampleWarps(augmentOptions, n, height, width, seed): Float32Array of n 3x3 matrices, for tests.
Napi::Value AugmentBatch(const Napi::CallbackInfo& info);

}  // namespace torchlet
