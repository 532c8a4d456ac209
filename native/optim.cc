#include "optim.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "errors.h"
#include "sgd_step.h"

namespace torchlet {

OneCycleOptions ParseOneCycle(const Napi::Object& s) {
  OneCycleOptions o;
  o.maxLr = GetNumber(s, "maxLr");
  o.totalSteps = GetInt(s, "totalSteps");
  o.pctStart = GetNumber(s, "pctStart", o.pctStart);
  std::string anneal = GetString(s, "anneal", "cos");
  if (anneal != "cos" && anneal != "linear") throw RangeError("scheduler.anneal must be 'cos' or 'linear', got '" + anneal + "'");
  o.cosine = anneal == "cos";
  o.divFactor = GetNumber(s, "divFactor", o.divFactor);
  o.finalDivFactor = GetNumber(s, "finalDivFactor", o.finalDivFactor);
  o.threePhase = GetBool(s, "threePhase", false);
  o.cycleMomentum = GetBool(s, "cycleMomentum", true);
  o.baseMomentum = GetNumber(s, "baseMomentum", o.baseMomentum);
  o.maxMomentum = GetNumber(s, "maxMomentum", o.maxMomentum);
  if (o.totalSteps <= 0) throw RangeError("scheduler.totalSteps must be a positive integer, got " + std::to_string(o.totalSteps));
  if (!(o.maxLr > 0)) throw RangeError("scheduler.maxLr must be positive, got " + std::to_string(o.maxLr));
  if (o.pctStart < 0 || o.pctStart > 1) throw RangeError("scheduler.pctStart must be in [0, 1]");
  if (!(o.divFactor > 0) || !(o.finalDivFactor > 0)) throw RangeError("scheduler divFactor and finalDivFactor must be positive");
  return o;
}

ScheduleOptions ParseSchedule(const Napi::Object& s) {
  ScheduleOptions o;
  o.type = GetString(s, "type", "constant");
  std::string interval = GetString(s, "interval", o.type == "onecycle" ? "step" : "epoch");
  if (interval != "step" && interval != "epoch") throw RangeError("scheduler.interval must be 'step' or 'epoch', got '" + interval + "'");
  o.perStep = interval == "step";
  if (o.type == "onecycle") o.onecycle = ParseOneCycle(s);
  if (o.type == "plateau") {
    o.plateauFactor = GetNumber(s, "factor", o.plateauFactor);
  } else {
    o.factor = GetNumber(s, "factor", o.factor);
  }
  o.totalIters = GetInt(s, "totalIters", o.totalIters);
  o.stepSize = GetInt(s, "stepSize", o.stepSize);
  o.gamma = GetNumber(s, "gamma", o.gamma);
  if (Has(s, "milestones")) {
    Napi::Value m = s.Get("milestones");
    if (!m.IsArray()) throw TypeError("scheduler.milestones must be an array of integers");
    Napi::Array arr = m.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value v = arr.Get(i);
      if (!v.IsNumber() || std::floor(v.As<Napi::Number>().DoubleValue()) != v.As<Napi::Number>().DoubleValue()) {
        throw TypeError("scheduler.milestones must be an array of integers");
      }
      o.milestones.push_back(v.As<Napi::Number>().Int64Value());
    }
  }
  o.tMax = GetInt(s, "tMax", o.tMax);
  o.etaMin = GetNumber(s, "etaMin", o.etaMin);
  std::string mode = GetString(s, "mode", "min");
  if (mode != "min" && mode != "max") throw RangeError("scheduler.mode must be 'min' or 'max', got '" + mode + "'");
  o.maximize = mode == "max";
  o.patience = GetInt(s, "patience", o.patience);
  o.threshold = GetNumber(s, "threshold", o.threshold);
  std::string tmode = GetString(s, "thresholdMode", "rel");
  if (tmode != "rel" && tmode != "abs") throw RangeError("scheduler.thresholdMode must be 'rel' or 'abs', got '" + tmode + "'");
  o.relative = tmode == "rel";
  o.cooldown = GetInt(s, "cooldown", o.cooldown);
  o.minLr = GetNumber(s, "minLr", o.minLr);
  o.plateauEps = GetNumber(s, "eps", o.plateauEps);
  try {
    ValidateSchedule(o);
  } catch (const std::invalid_argument& e) {
    throw RangeError(e.what());
  }
  return o;
}

OptimizerOptions ParseOptimizer(const Napi::Object& opt) {
  OptimizerOptions t;
  t.type = GetString(opt, "type", "adamw");
  if (t.type != "adam" && t.type != "adamw" && t.type != "sgd" && t.type != "rmsprop") {
    throw RangeError("optimizer.type must be 'adam', 'adamw', 'sgd' or 'rmsprop', got '" + t.type + "'");
  }
  t.lr = GetNumber(opt, "lr");
  if (!(t.lr > 0) || !std::isfinite(t.lr)) throw RangeError("optimizer.lr must be a positive number, got " + std::to_string(t.lr));
  // PyTorch's defaults: AdamW decays by 1e-2, the others not at all.
  t.weightDecay = GetNumber(opt, "weightDecay", t.type == "adamw" ? 1e-2 : 0);
  if (!(t.weightDecay >= 0)) throw RangeError("optimizer.weightDecay must be >= 0");
  if (Has(opt, "betas")) {
    Napi::Value b = opt.Get("betas");
    if (!b.IsArray() || b.As<Napi::Array>().Length() != 2 || !b.As<Napi::Array>().Get(0u).IsNumber() || !b.As<Napi::Array>().Get(1u).IsNumber()) {
      throw TypeError("optimizer.betas must be a [beta1, beta2] pair of numbers");
    }
    t.beta1 = b.As<Napi::Array>().Get(0u).As<Napi::Number>().DoubleValue();
    t.beta2 = b.As<Napi::Array>().Get(1u).As<Napi::Number>().DoubleValue();
    if (!(t.beta1 >= 0 && t.beta1 < 1 && t.beta2 >= 0 && t.beta2 < 1)) throw RangeError("optimizer.betas must be within [0, 1)");
  }
  t.eps = GetNumber(opt, "eps", t.type == "rmsprop" ? 1e-8 : t.eps);
  t.amsgrad = GetBool(opt, "amsgrad", false);
  t.momentum = GetNumber(opt, "momentum", 0);
  t.dampening = GetNumber(opt, "dampening", 0);
  t.nesterov = GetBool(opt, "nesterov", false);
  t.alpha = GetNumber(opt, "alpha", t.alpha);
  t.centered = GetBool(opt, "centered", false);
  if (!(t.eps >= 0)) throw RangeError("optimizer.eps must be >= 0");
  if (!(t.momentum >= 0)) throw RangeError("optimizer.momentum must be >= 0");
  if (!(t.alpha >= 0)) throw RangeError("optimizer.alpha must be >= 0");
  if (t.nesterov && (t.momentum <= 0 || t.dampening != 0)) throw RangeError("nesterov needs momentum > 0 and dampening 0");
  return t;
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const std::vector<at::Tensor>& params, const OptimizerOptions& o) {
  namespace optim = torch::optim;
  if (o.type == "adam") {
    return std::make_unique<optim::Adam>(
        params, optim::AdamOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weightDecay).amsgrad(o.amsgrad));
  }
  if (o.type == "adamw") {
    return std::make_unique<optim::AdamW>(
        params, optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weightDecay).amsgrad(o.amsgrad));
  }
  if (o.type == "rmsprop") {
    return std::make_unique<optim::RMSprop>(
        params, optim::RMSpropOptions(o.lr).alpha(o.alpha).eps(o.eps).weight_decay(o.weightDecay).momentum(o.momentum).centered(o.centered));
  }
  return std::make_unique<FusedSgd>(
      params, optim::SGDOptions(o.lr).momentum(o.momentum).dampening(o.dampening).nesterov(o.nesterov).weight_decay(o.weightDecay));
}

void SetLrMomentum(torch::optim::Optimizer& opt, const std::string& type, double lr, double momentum) {
  namespace optim = torch::optim;
  const bool cycle = !std::isnan(momentum);
  for (auto& group : opt.param_groups()) {
    if (type == "adam") {
      auto& g = static_cast<optim::AdamOptions&>(group.options());
      g.lr(lr);
      if (cycle) g.betas({momentum, std::get<1>(g.betas())});
    } else if (type == "adamw") {
      auto& g = static_cast<optim::AdamWOptions&>(group.options());
      g.lr(lr);
      if (cycle) g.betas({momentum, std::get<1>(g.betas())});
    } else if (type == "rmsprop") {
      auto& g = static_cast<optim::RMSpropOptions&>(group.options());
      g.lr(lr);
      if (cycle) g.momentum(momentum);
    } else {
      auto& g = static_cast<optim::SGDOptions&>(group.options());
      g.lr(lr);
      if (cycle) g.momentum(momentum);
    }
  }
}

namespace {

std::vector<double> OptionalMetrics(const Napi::Object& o, const char* key) {
  std::vector<double> out;
  if (!Has(o, key)) return out;
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) throw TypeError(std::string(key) + " must be an array of numbers");
  Napi::Array arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    if (!arr.Get(i).IsNumber()) throw TypeError(std::string(key) + " must be an array of numbers");
    out.push_back(arr.Get(i).As<Napi::Number>().DoubleValue());
  }
  return out;
}

Napi::Float32Array Float32(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw TypeError(std::string(key) + " must be a Float32Array");
  }
  return v.As<Napi::Float32Array>();
}

}  // namespace

Napi::Value LrScheduleProbe(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    ScheduleOptions so = ParseSchedule(ArgObject(info, 0, "options"));
    if (info.Length() < 2 || !info[1].IsNumber()) throw TypeError("baseLr must be a number");
    double base = info[1].As<Napi::Number>().DoubleValue();
    int64_t count = ArgInt(info, 2, "count");
    if (count < 0) throw RangeError("count must be >= 0");
    std::vector<double> metrics;
    if (info.Length() > 3 && info[3].IsArray()) {
      Napi::Object holder = Napi::Object::New(info.Env());
      holder.Set("metrics", info[3]);
      metrics = OptionalMetrics(holder, "metrics");
    }
    Schedule sched(so, base);
    auto lr = Napi::Float64Array::New(info.Env(), static_cast<size_t>(count));
    auto mom = Napi::Float64Array::New(info.Env(), static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      auto [l, m] = sched.At(i);
      lr[static_cast<size_t>(i)] = l;
      mom[static_cast<size_t>(i)] = m;
      if (static_cast<size_t>(i) < metrics.size()) sched.Observe(metrics[static_cast<size_t>(i)]);
    }
    Napi::Object r = Napi::Object::New(info.Env());
    r.Set("lr", lr);
    r.Set("momentum", mom);
    return r;
  });
}

Napi::Value OptimizerStepsProbe(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Object o = ArgObject(info, 0, "options");
    OptimizerOptions oo = ParseOptimizer(GetObject(o, "optimizer"));
    std::optional<Schedule> sched;
    if (Has(o, "scheduler")) sched.emplace(ParseSchedule(GetObject(o, "scheduler")), oo.lr);
    Napi::Float32Array init = Float32(o, "params"), grads = Float32(o, "grads");
    const int64_t n = static_cast<int64_t>(init.ElementLength());
    if (n == 0 || grads.ElementLength() % static_cast<size_t>(n) != 0) throw RangeError("grads must hold a whole number of params-sized steps");
    const int64_t steps = static_cast<int64_t>(grads.ElementLength()) / n;
    std::vector<double> metrics = OptionalMetrics(o, "metrics");

    at::Tensor p = torch::from_blob(init.Data(), {n}, torch::kFloat32).clone().set_requires_grad(true);
    auto opt = MakeOptimizer({p}, oo);
    auto out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(steps * n));
    for (int64_t s = 0; s < steps; ++s) {
      if (sched) {
        auto [lr, momentum] = sched->At(s);
        SetLrMomentum(*opt, oo.type, lr, momentum);
      }
      p.mutable_grad() = torch::from_blob(grads.Data() + s * n, {n}, torch::kFloat32).clone();
      opt->step();
      std::memcpy(out.Data() + s * n, p.data_ptr<float>(), sizeof(float) * static_cast<size_t>(n));
      if (sched && static_cast<size_t>(s) < metrics.size()) sched->Observe(metrics[static_cast<size_t>(s)]);
    }
    return out;
  });
}

}  // namespace torchlet
