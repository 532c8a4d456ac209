#include "trainer.h"

#include <torch/serialize.h>

#include <chrono>
#include <cstring>
#include <sstream>

#include "compute_thread.h"
#include "dataset.h"
#include "errors.h"
#include "files.h"
#include "state_dict.h"

namespace torchlet {

namespace {

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

AugmentOptions ParseAugment(const Napi::Object& a) {
  AugmentOptions o;
  o.enabled = true;
  auto range = [&](const char* key, double& lo, double& hi) {
    if (!Has(a, key)) return;
    Napi::Value v = a.Get(key);
    if (v.IsNumber()) {
      hi = std::abs(v.As<Napi::Number>().DoubleValue());
      lo = -hi;
    } else if (v.IsArray() && v.As<Napi::Array>().Length() == 2 && v.As<Napi::Array>().Get(0u).IsNumber() &&
               v.As<Napi::Array>().Get(1u).IsNumber()) {
      lo = v.As<Napi::Array>().Get(0u).As<Napi::Number>().DoubleValue();
      hi = v.As<Napi::Array>().Get(1u).As<Napi::Number>().DoubleValue();
      if (lo > hi) throw RangeError(std::string("augment.") + key + " range [lo, hi] has lo > hi");
    } else {
      throw TypeError(std::string("augment.") + key + " must be a number or a [lo, hi] pair");
    }
  };
  o.degrees = GetNumber(a, "degrees", 0);
  if (o.degrees < 0 || o.degrees > 180) throw RangeError("augment.degrees must be within [0, 180]");
  if (Has(a, "translate")) {
    Napi::Value v = a.Get("translate");
    if (v.IsNumber()) {
      o.translateX = o.translateY = v.As<Napi::Number>().DoubleValue();
    } else {
      double x = 0, y = 0;
      range("translate", x, y);  // torchvision's (max_dx, max_dy) pair
      o.translateX = x;
      o.translateY = y;
    }
  }
  if (Has(a, "scale")) range("scale", o.scaleMin, o.scaleMax);
  range("shear", o.shearXMin, o.shearXMax);
  range("shearY", o.shearYMin, o.shearYMax);
  o.distortion = GetNumber(a, "distortion", 0);
  o.perspectiveP = GetNumber(a, "perspectiveP", 0);
  if (Has(a, "elastic")) {
    // torchvision's ElasticTransform() defaults: alpha 50, sigma 5.
    Napi::Object e = GetObject(a, "elastic");
    auto number = [&](const char* key, double fallback) {
      if (!Has(e, key)) return fallback;
      Napi::Value v = e.Get(key);
      if (!v.IsNumber()) throw TypeError(std::string("augment.elastic.") + key + " must be a number");
      const double x = v.As<Napi::Number>().DoubleValue();
      if (!std::isfinite(x) || x < 0) throw RangeError(std::string("augment.elastic.") + key + " must be a finite number >= 0");
      return x;
    };
    o.elasticAlpha = number("alpha", 50);
    o.elasticSigma = number("sigma", 5);
  }
  o.nearest = GetString(a, "interpolation", "bilinear") == "nearest";
  if (o.translateX < 0 || o.translateX > 1 || o.translateY < 0 || o.translateY > 1) throw RangeError("augment.translate must be within [0, 1]");
  if (o.scaleMin <= 0) throw RangeError("augment.scale must be positive");
  if (o.distortion < 0 || o.distortion > 1) throw RangeError("augment.distortion must be within [0, 1]");
  if (o.perspectiveP < 0 || o.perspectiveP > 1) throw RangeError("augment.perspectiveP must be within [0, 1]");
  return o;
}

TrainOptions ParseTrainOptions(const Napi::Object& o) {
  TrainOptions t;
  t.optimizer = ParseOptimizer(GetObject(o, "optimizer"));
  if (Has(o, "scheduler")) t.schedule = ParseSchedule(GetObject(o, "scheduler"));
  t.loss = GetString(o, "loss", "nll");
  if (t.loss != "nll" && t.loss != "cross_entropy") throw RangeError("loss must be 'nll' or 'cross_entropy', got '" + t.loss + "'");
  t.labelSmoothing = GetNumber(o, "labelSmoothing", 0);
  if (t.labelSmoothing < 0 || t.labelSmoothing >= 1) throw RangeError("labelSmoothing must be within [0, 1)");
  if (t.labelSmoothing > 0 && t.loss == "nll") throw RangeError("labelSmoothing needs loss 'cross_entropy' (NLL has no smoothing)");
  t.emaDecay = GetNumber(o, "emaDecay", 0);
  if (!(t.emaDecay >= 0 && t.emaDecay < 1)) throw RangeError("emaDecay must be within [0, 1) (0: no EMA)");
  t.recalibrateBatchNorm = GetBool(o, "recalibrateBatchNorm", false);
  if (t.recalibrateBatchNorm && t.emaDecay > 0) {
    throw RangeError("recalibrateBatchNorm and an EMA of the weights do not combine: the EMA averages batch norm's statistics itself");
  }
  t.batchSize = GetInt(o, "batchSize", 128);
  if (t.batchSize <= 0) throw RangeError("batchSize must be a positive integer, got " + std::to_string(t.batchSize));
  int64_t seed = GetInt(o, "seed", 42);
  if (seed < 0) throw RangeError("seed must be a non-negative integer");
  t.seed = static_cast<uint64_t>(seed);
  if (Has(o, "augment")) t.augment = ParseAugment(GetObject(o, "augment"));
  return t;
}

struct Progress {
  int64_t step = 0, steps = 0;
  double loss = 0, accuracy = 0, lr = 0;
};

}  // namespace

Napi::Function Trainer::Init(Napi::Env env) {
  return DefineClass(env, "Trainer",
                     {
                         InstanceMethod<&Trainer::TrainEpoch>("trainEpoch"),
                         InstanceMethod<&Trainer::SaveState>("saveState"),
                         InstanceMethod<&Trainer::LoadState>("loadState"),
                         InstanceAccessor<&Trainer::GetStep>("step"),
                         InstanceAccessor<&Trainer::GetLr>("lr"),
                         InstanceMethod<&Trainer::Observe>("observe"),
                         InstanceMethod<&Trainer::Dispose>("dispose"),
                         InstanceMethod<&Trainer::SwapEma>("swapEma"),
                     });
}

// new Trainer(model, options)
Trainer::Trainer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Trainer>(info) {
  Guard(info.Env(), [&] {
    model_ = Model::FromJs(info.Length() ? info[0] : info.Env().Undefined(), "model");
    model_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    o_ = ParseTrainOptions(ArgObject(info, 1, "options"));
    optimizer_ = MakeOptimizer(model_->Net()->parameters(), o_.optimizer);
    if (o_.emaDecay > 0) {
      for (const auto& [name, t] : StateDict(*model_->Net())) ema_.emplace_back(name, t.detach().clone());
    }
    if (o_.schedule) {
      try {
        schedule_ = std::make_unique<Schedule>(*o_.schedule, o_.optimizer.lr);
      } catch (const std::invalid_argument& e) {
        throw RangeError(e.what());
      }
    }
  });
}

torch::optim::Optimizer& Trainer::Optim() {
  if (!optimizer_) throw std::runtime_error("the trainer has been disposed");
  return *optimizer_;
}

double Trainer::ApplySchedule(int64_t epoch) {
  if (!schedule_) return o_.optimizer.lr;
  auto [lr, momentum] = schedule_->At(ScheduleIndex(epoch));
  SetLrMomentum(*optimizer_, o_.optimizer.type, lr, momentum);
  return lr;
}

template <typename Report>
Trainer::EpochResult Trainer::RunEpoch(const at::Tensor& images, const at::Tensor& labels, int64_t epoch, Report&& report,
                                       const std::atomic<bool>& cancel) {
  auto start = std::chrono::steady_clock::now();
  auto& net = model_->Net();
  const ModelSpec& spec = model_->Spec();
  const int64_t n = images.size(0), bs = o_.batchSize;
  const int64_t steps = (n + bs - 1) / bs;

  // Everything random in an epoch derives from (seed, epoch), so resuming at an epoch
  // boundary replays exactly what an uninterrupted run would have done.
  Rng rng(SplitMix(o_.seed ^ SplitMix(static_cast<uint64_t>(epoch))));
  torch::manual_seed(rng.Next());  // dropout draws from libtorch's default generator
  at::Tensor perm = torch::empty({n}, torch::kInt64);
  int64_t* pp = perm.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) pp[i] = i;
  for (int64_t i = n - 1; i > 0; --i) std::swap(pp[i], pp[rng.RandInt(0, i + 1)]);
  perm = perm.to(images.device());

  net->train();
  at::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(images.device()));
  at::Tensor correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(images.device()));
  auto last_report = std::chrono::steady_clock::now();
  int64_t done = 0;
  double last_lr = schedule_ ? schedule_->Lr(ScheduleIndex(epoch)) : o_.optimizer.lr;
  for (int64_t s = 0; s < steps; ++s) {
    if (cancel) throw std::runtime_error("training was cancelled");
    at::Tensor idx = perm.slice(0, s * bs, std::min(n, (s + 1) * bs));
    at::Tensor x = images.index_select(0, idx).to(torch::kFloat32).div_(255.0);
    if (o_.augment.enabled) x = Augment(x, o_.augment, rng);
    x = Standardise(x, spec);
    at::Tensor y = labels.index_select(0, idx);

    const double step_lr = ApplySchedule(epoch);
    // Gradients are dropped rather than zeroed, as PyTorch 2's zero_grad() does: backward
    // then hands each parameter its fresh gradient instead of adding it into a zeroed copy,
    // which saved a pass over every gradient per step (parallel_cnn's are 100 MB).
    for (auto& group : optimizer_->param_groups()) {
      for (auto& p : group.params()) p.mutable_grad().reset();
    }
    at::Tensor out = net->forward(x);
    at::Tensor loss = o_.loss == "nll"
                          ? torch::nll_loss(out, y)
                          : torch::nn::functional::cross_entropy(
                                out, y, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(o_.labelSmoothing));
    loss.backward();
    optimizer_->step();
    UpdateEma();
    ++step_;
    last_lr = step_lr;

    {
      torch::NoGradGuard no_grad;
      loss_sum.add_(loss.detach() * static_cast<double>(idx.size(0)));
      correct.add_(out.argmax(1).eq(y).sum());
    }
    done += idx.size(0);
    auto now = std::chrono::steady_clock::now();
    if (s + 1 == steps || now - last_report > std::chrono::milliseconds(100)) {
      last_report = now;
      Progress p;
      p.step = s + 1;
      p.steps = steps;
      p.loss = loss_sum.item<double>() / static_cast<double>(done);
      p.accuracy = static_cast<double>(correct.item<int64_t>()) / static_cast<double>(done);
      p.lr = step_lr;
      report(p);
    }
  }
  if (o_.recalibrateBatchNorm) RecalibrateBatchNorm(images);
  EpochResult r;
  r.steps = steps;
  r.samples = done;
  r.loss = loss_sum.item<double>() / static_cast<double>(done);
  r.accuracy = static_cast<double>(correct.item<int64_t>()) / static_cast<double>(done);
  r.lr = last_lr;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  epoch_ = epoch + 1;
  return r;
}

void Trainer::UpdateEma() {
  if (ema_.empty()) return;
  // TensorFlow's ExponentialMovingAverage(num_updates) warm-up: early on the average follows
  // the weights closely, so it is worth evaluating from the first epoch.
  const double steps = static_cast<double>(step_);
  const double decay = std::min(o_.emaDecay, (1 + steps) / (10 + steps));
  torch::NoGradGuard no_grad;
  NamedTensors live = StateDict(*model_->Net());
  for (size_t i = 0; i < ema_.size(); ++i) {
    at::Tensor& avg = ema_[i].second;
    const at::Tensor& now = live[i].second;
    // Batch norm's running statistics are averaged too; its step counter is just copied.
    if (avg.is_floating_point()) {
      avg.mul_(decay).add_(now, 1 - decay);
    } else {
      avg.copy_(now);
    }
  }
}

void Trainer::RecalibrateBatchNorm(const at::Tensor& images) {
  auto& net = model_->Net();
  // With momentum None each batch norm keeps the cumulative average from its reset on, and
  // the statistics no longer depend on what they were: the augmented batches and the
  // earlier weights of the epoch leave no trace.
  struct Momenta {  // each batch norm's own momentum, given back however the passes end
    std::vector<std::pair<torch::nn::BatchNormOptions*, c10::optional<double>>> saved;
    ~Momenta() {
      for (auto& [options, momentum] : saved) options->momentum(momentum);
    }
  } momenta;
  auto reset = [&](auto* bn) {
    if (bn == nullptr || !bn->options.track_running_stats()) return;
    momenta.saved.emplace_back(&bn->options, bn->options.momentum());
    bn->options.momentum(c10::nullopt);
    bn->reset_running_stats();
  };
  for (const auto& m : net->modules(false)) {
    reset(m->as<torch::nn::BatchNorm2dImpl>());
    reset(m->as<torch::nn::BatchNorm1dImpl>());
  }
  if (momenta.saved.empty()) return;
  torch::NoGradGuard no_grad;
  net->train();
  const int64_t n = images.size(0), bs = o_.batchSize;
  for (int64_t start = 0; start < n; start += bs) {
    net->forward(Normalise(images.slice(0, start, std::min(n, start + bs)), model_->Spec()));
  }
}

namespace {

class EpochWorker : public Napi::AsyncProgressQueueWorker<Progress> {
 public:
  EpochWorker(Napi::Env env, Trainer* trainer, Napi::ObjectReference trainer_ref, at::Tensor images, at::Tensor labels, int64_t epoch,
              Napi::Function on_progress)
      : Napi::AsyncProgressQueueWorker<Progress>(Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "torchlet.trainEpoch"),
        deferred_(Napi::Promise::Deferred::New(env)),
        trainer_(trainer),
        trainer_ref_(std::move(trainer_ref)),
        images_(std::move(images)),
        labels_(std::move(labels)),
        epoch_(epoch) {
    if (!on_progress.IsEmpty()) on_progress_ = Napi::Persistent(on_progress);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    try {
      RunOnComputeThread([&] { result_ = trainer_->RunEpoch(images_, labels_, epoch_, [&](const Progress& p) { progress.Send(&p, 1); }, cancel_); });
    } catch (...) {
      SetError(callback_error_.empty() ? CurrentExceptionMessage() : callback_error_);
    }
  }

  void OnProgress(const Progress* data, size_t count) override {
    if (on_progress_.IsEmpty() || cancel_) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (size_t i = 0; i < count; ++i) {
      Napi::Object p = Napi::Object::New(env);
      p.Set("step", static_cast<double>(data[i].step));
      p.Set("steps", static_cast<double>(data[i].steps));
      p.Set("loss", data[i].loss);
      p.Set("accuracy", data[i].accuracy);
      p.Set("lr", data[i].lr);
      try {
        Napi::Value r = on_progress_.Call({p});
        if (r.IsBoolean() && !r.As<Napi::Boolean>().Value()) {
          callback_error_ = "training was cancelled by the progress callback";
          cancel_ = true;
        }
      } catch (const Napi::Error& e) {
        callback_error_ = std::string("the progress callback threw: ") + e.Message();
        cancel_ = true;
      }
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    trainer_->GetModel()->Release();
    // The callback may have thrown on the last report, after the loop had finished.
    if (!callback_error_.empty()) {
      deferred_.Reject(Napi::Error::New(env, callback_error_).Value());
      return;
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("loss", result_.loss);
    r.Set("accuracy", result_.accuracy);
    r.Set("lr", result_.lr);
    r.Set("seconds", result_.seconds);
    r.Set("steps", static_cast<double>(result_.steps));
    r.Set("samples", static_cast<double>(result_.samples));
    deferred_.Resolve(r);
  }

  void OnError(const Napi::Error& e) override {
    trainer_->GetModel()->Release();
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Trainer* trainer_;
  Napi::ObjectReference trainer_ref_;
  at::Tensor images_, labels_;
  int64_t epoch_;
  Napi::FunctionReference on_progress_;
  std::atomic<bool> cancel_{false};
  std::string callback_error_;
  Trainer::EpochResult result_;
};

std::string ArchiveKey(const std::string& name, const std::string& prefix = "model:") {
  std::string k = prefix + name;
  for (auto& c : k)
    if (c == '.') c = '/';  // archives reject dots in keys
  return k;
}

}  // namespace

// trainEpoch(dataset, epoch, onProgress?): Promise<{ loss, accuracy, lr, seconds, steps, samples }>
Napi::Value Trainer::TrainEpoch(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Optim();
    Dataset* data = Dataset::FromJs(info.Length() ? info[0] : info.Env().Undefined(), "dataset");
    int64_t epoch = ArgInt(info, 1, "epoch");
    if (epoch < 0) throw RangeError("epoch must be >= 0");
    Napi::Function cb;
    if (info.Length() > 2 && !info[2].IsUndefined()) {
      if (!info[2].IsFunction()) throw TypeError("onProgress must be a function");
      cb = info[2].As<Napi::Function>();
    }
    data->CheckCompatible(model_->Spec(), model_->Classes());
    if (ema_swapped_) throw std::runtime_error("the model holds the EMA weights: call swapEma() again before training");
    if (schedule_ && schedule_->Limit() >= 0) {
      int64_t steps = (data->Size() + o_.batchSize - 1) / o_.batchSize;
      int64_t first = schedule_->PerStep() ? step_ : epoch, last = schedule_->PerStep() ? step_ + steps - 1 : epoch;
      if (last >= schedule_->Limit()) {
        throw RangeError("this epoch needs schedule " + std::string(schedule_->PerStep() ? "steps " : "epochs ") + std::to_string(first + 1) + ".." +
                         std::to_string(last + 1) + " but the OneCycleLR schedule has totalSteps " + std::to_string(schedule_->Limit()));
      }
    }
    model_->Acquire("train");
    torch::Device device = model_->Device();
    auto* worker = new EpochWorker(info.Env(), this, Napi::Persistent(Value()), data->Images(device), data->Labels(device), epoch, cb);
    worker->Queue();
    return worker->Promise();
  });
}

// saveState(path, meta: string): model, optimizer and schedule position, written atomically.
Napi::Value Trainer::SaveState(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    std::string path = ArgString(info, 0, "path");
    std::string meta = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    auto& opt = Optim();
    if (ema_swapped_) throw std::runtime_error("the model holds the EMA weights: call swapEma() again before saving a checkpoint");
    model_->Acquire("save a checkpoint");
    try {
      torch::serialize::OutputArchive archive;
      for (const auto& [name, t] : StateDict(*model_->Net())) archive.write(ArchiveKey(name), t.detach().to(torch::kCPU));
      for (const auto& [name, t] : ema_) archive.write(ArchiveKey(name, "ema:"), t.to(torch::kCPU));
      torch::serialize::OutputArchive opt_archive;
      opt.save(opt_archive);
      archive.write("optimizer", opt_archive);
      archive.write("step", c10::IValue(step_));
      archive.write("epoch", c10::IValue(epoch_));
      if (schedule_) {
        std::vector<double> state = schedule_->State();
        if (!state.empty()) archive.write("schedule_state", torch::tensor(state, torch::kFloat64));
      }
      archive.write("meta", c10::IValue(meta));
      archive.write("format", c10::IValue(std::string("torchlet-checkpoint-1")));
      std::string bytes;
      archive.save_to([&](const void* buf, size_t n) {
        bytes.append(static_cast<const char*>(buf), n);
        return n;
      });
      AtomicWrite(path, bytes.data(), bytes.size());
    } catch (...) {
      model_->Release();
      throw;
    }
    model_->Release();
    return info.Env().Undefined();
  });
}

// loadState(path): restores a saveState file; returns its meta string.
Napi::Value Trainer::LoadState(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    std::string path = ArgString(info, 0, "path");
    auto& opt = Optim();
    std::vector<char> bytes = ReadFile(path);
    torch::serialize::InputArchive archive;
    c10::IValue format, step, meta;
    try {
      archive.load_from(bytes.data(), bytes.size());
      archive.read("format", format);
      archive.read("step", step);
      archive.read("meta", meta);
    } catch (const c10::Error& e) {
      throw std::runtime_error("'" + path + "' is not a readable torchlet checkpoint (truncated or corrupt?): " + TorchMessage(e));
    }
    if (!format.isString() || format.toStringRef() != "torchlet-checkpoint-1") {
      throw std::runtime_error("'" + path + "' is not a torchlet checkpoint");
    }
    NamedTensors expected = StateDict(*model_->Net());
    std::vector<at::Tensor> loaded;
    std::vector<std::string> problems;
    for (const auto& [name, t] : expected) {
      at::Tensor v;
      if (!archive.try_read(ArchiveKey(name), v)) {
        problems.push_back("missing " + name);
      } else if (v.sizes() != t.sizes()) {
        problems.push_back(name + ": checkpoint has " + ShapeString(v.sizes()) + ", model needs " + ShapeString(t.sizes()));
      }
      loaded.push_back(v);
    }
    std::vector<at::Tensor> loaded_ema;
    for (const auto& [name, t] : ema_) {
      at::Tensor v;
      if (!archive.try_read(ArchiveKey(name, "ema:"), v)) {
        problems.push_back("missing the EMA of " + name + " (was it trained without EMA?)");
      } else if (v.sizes() != t.sizes()) {
        problems.push_back("EMA of " + name + ": checkpoint has " + ShapeString(v.sizes()) + ", model needs " + ShapeString(t.sizes()));
      }
      loaded_ema.push_back(v);
    }
    if (!problems.empty()) {
      std::string msg = "checkpoint '" + path + "' does not fit this model and trainer:";
      for (const auto& p : problems) msg += "\n  " + p;
      throw std::runtime_error(msg);
    }
    model_->Acquire("load a checkpoint");
    try {
      torch::serialize::InputArchive opt_archive;
      archive.read("optimizer", opt_archive);
      opt.load(opt_archive);
      torch::NoGradGuard no_grad;
      at::Tensor schedule_state;
      std::vector<double> state;
      if (archive.try_read("schedule_state", schedule_state)) {
        state.assign(schedule_state.data_ptr<double>(), schedule_state.data_ptr<double>() + schedule_state.numel());
      }
      if (schedule_) schedule_->Restore(state);
      c10::IValue epoch;
      if (archive.try_read("epoch", epoch)) epoch_ = epoch.toInt();
      for (size_t i = 0; i < expected.size(); ++i) expected[i].second.copy_(loaded[i]);
      for (size_t i = 0; i < ema_.size(); ++i) ema_[i].second.copy_(loaded_ema[i]);
      ema_swapped_ = false;
      step_ = step.toInt();
    } catch (...) {
      model_->Release();
      throw;
    }
    model_->Release();
    return Napi::String::New(info.Env(), meta.toStringRef());
  });
}

Napi::Value Trainer::GetStep(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(step_)); }

// The lr the next step will use.
Napi::Value Trainer::GetLr(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    if (!schedule_) return Napi::Number::New(info.Env(), o_.optimizer.lr);
    int64_t index = ScheduleIndex(epoch_);
    if (schedule_->Limit() >= 0) index = std::min(index, schedule_->Limit() - 1);
    return Napi::Number::New(info.Env(), schedule_->Lr(index));
  });
}

// observe(metric): the end-of-epoch metric a plateau schedule steps on.
Napi::Value Trainer::Observe(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber()) throw TypeError("observe(metric) takes a number");
    if (!schedule_ || schedule_->Options().type != "plateau") throw std::runtime_error("observe() is for the plateau schedule only");
    try {
      schedule_->Observe(info[0].As<Napi::Number>().DoubleValue());
    } catch (const std::invalid_argument& e) {
      throw RangeError(e.what());
    }
    return info.Env().Undefined();
  });
}

// swapEma(): exchanges the model's weights with their moving average; a second call swaps back.
Napi::Value Trainer::SwapEma(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Optim();
    if (ema_.empty()) throw std::runtime_error("this trainer keeps no EMA (give emaDecay > 0)");
    model_->Acquire("swap in the EMA weights");
    try {
      torch::NoGradGuard no_grad;
      NamedTensors live = StateDict(*model_->Net());
      for (size_t i = 0; i < ema_.size(); ++i) {
        at::Tensor held = live[i].second.clone();
        live[i].second.copy_(ema_[i].second);
        ema_[i].second.copy_(held);
      }
    } catch (...) {
      model_->Release();
      throw;
    }
    model_->Release();
    ema_swapped_ = !ema_swapped_;
    return Napi::Boolean::New(info.Env(), ema_swapped_);
  });
}

Napi::Value Trainer::Dispose(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    if (optimizer_ && model_ && !model_->Net().is_empty()) model_->Acquire("dispose the trainer");
    optimizer_.reset();
    schedule_.reset();
    ema_.clear();
    if (model_ && !model_->Net().is_empty()) model_->Release();
    model_ref_.Reset();
    return info.Env().Undefined();
  });
}

Napi::Value OneCycleSchedule(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    OneCycle sched(ParseOneCycle(ArgObject(info, 0, "options")));
    int64_t steps = ArgInt(info, 1, "steps");
    Napi::Float64Array lr = Napi::Float64Array::New(info.Env(), static_cast<size_t>(steps));
    Napi::Float64Array mom = Napi::Float64Array::New(info.Env(), static_cast<size_t>(steps));
    for (int64_t i = 0; i < steps; ++i) {
      auto [l, m] = sched.At(i);
      lr[static_cast<size_t>(i)] = l;
      mom[static_cast<size_t>(i)] = m;
    }
    Napi::Object r = Napi::Object::New(info.Env());
    r.Set("lr", lr);
    r.Set("momentum", mom);
    return r;
  });
}

// augmentBatch(dataset, start, count, augmentOptions, seed): Float32Array of warped images in [0, 1].
Napi::Value AugmentBatch(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Dataset* data = Dataset::FromJs(info.Length() ? info[0] : info.Env().Undefined(), "dataset");
    int64_t start = ArgInt(info, 1, "start"), count = ArgInt(info, 2, "count");
    if (start < 0 || count <= 0 || start + count > data->Size()) throw RangeError("augmentBatch range is outside the dataset");
    AugmentOptions o = ParseAugment(ArgObject(info, 3, "augment options"));
    Rng rng(static_cast<uint64_t>(ArgInt(info, 4, "seed")));
    at::Tensor x = data->Images(torch::kCPU).slice(0, start, start + count).to(torch::kFloat32).div_(255.0);
    at::Tensor out = Augment(x, o, rng).contiguous();
    auto arr = Napi::Float32Array::New(info.Env(), static_cast<size_t>(out.numel()));
    std::memcpy(arr.Data(), out.data_ptr<float>(), sizeof(float) * out.numel());
    return arr;
  });
}

}  // namespace torchlet
