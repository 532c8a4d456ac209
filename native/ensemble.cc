#include "ensemble.h"

#include <chrono>
#include <cstring>
#include <set>
#include <vector>

#include "compute_thread.h"
#include "dataset.h"
#include "errors.h"
#include "model.h"

namespace torchlet {

std::pair<at::Tensor, at::Tensor> Vote(const at::Tensor& log_probs, bool hard) {
  at::Tensor lp = log_probs.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t m = lp.size(0), n = lp.size(1), c = lp.size(2);
  // Members may end in log_softmax or not: normalising again is a no-op for log-probabilities.
  at::Tensor probs = torch::log_softmax(lp, 2).exp_().mean(0).contiguous();  // [N, C]
  at::Tensor scores = hard ? torch::zeros({n, c}, torch::kFloat32) : probs;
  at::Tensor preds = torch::empty({n}, torch::kUInt8);
  const float* l = lp.data_ptr<float>();
  const float* p = probs.data_ptr<float>();
  float* s = scores.data_ptr<float>();
  uint8_t* out = preds.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    const float* pi = p + i * c;
    if (hard) {
      float* si = s + i * c;
      for (int64_t k = 0; k < m; ++k) {
        const float* row = l + (k * n + i) * c;
        int64_t best = 0;  // a member's own vote: its first maximal class
        for (int64_t j = 1; j < c; ++j)
          if (row[j] > row[best]) best = j;
        si[best] += 1.0f / static_cast<float>(m);
      }
      int64_t win = 0;
      for (int64_t j = 1; j < c; ++j)
        if (si[j] > si[win] || (si[j] == si[win] && pi[j] > pi[win])) win = j;
      out[i] = static_cast<uint8_t>(win);
    } else {
      int64_t win = 0;
      for (int64_t j = 1; j < c; ++j)
        if (pi[j] > pi[win]) win = j;
      out[i] = static_cast<uint8_t>(win);
    }
  }
  return {preds, scores};
}

namespace {

constexpr int64_t kChunk = 128;

Napi::Float32Array ToFloat32(Napi::Env env, const at::Tensor& t) {
  at::Tensor c = t.to(torch::kCPU, torch::kFloat32).contiguous();
  auto a = Napi::Float32Array::New(env, static_cast<size_t>(c.numel()));
  std::memcpy(a.Data(), c.data_ptr<float>(), sizeof(float) * static_cast<size_t>(c.numel()));
  return a;
}

Napi::Uint8Array ToUint8(Napi::Env env, const at::Tensor& t) {
  at::Tensor c = t.to(torch::kCPU, torch::kUInt8).contiguous();
  auto a = Napi::Uint8Array::New(env, static_cast<size_t>(c.numel()));
  std::memcpy(a.Data(), c.data_ptr<uint8_t>(), static_cast<size_t>(c.numel()));
  return a;
}

class EnsembleWorker : public Napi::AsyncWorker {
 public:
  EnsembleWorker(Napi::Env env, std::vector<Model*> models, std::vector<Napi::ObjectReference> refs, std::vector<at::Tensor> images,
                 at::Tensor labels, bool hard)
      : Napi::AsyncWorker(env, "torchlet.ensembleEvaluate"),
        deferred_(Napi::Promise::Deferred::New(env)),
        models_(std::move(models)),
        refs_(std::move(refs)),
        images_(std::move(images)),
        labels_(std::move(labels)),
        hard_(hard) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      RunOnComputeThread([&] {
        auto start = std::chrono::steady_clock::now();
        c10::InferenceMode guard;
        const int64_t m = static_cast<int64_t>(models_.size()), n = labels_.size(0), c = models_[0]->Classes();
        std::vector<bool> was_training;
        for (Model* model : models_) {
          was_training.push_back(model->Net()->is_training());
          model->Net()->eval();
        }
        predictions_ = torch::empty({n}, torch::kUInt8);
        probabilities_ = torch::empty({n, c}, torch::kFloat32);
        members_ = torch::empty({m, n}, torch::kUInt8);
        at::Tensor lp = torch::empty({m, std::min(n, kChunk), c}, torch::kFloat32);
        for (int64_t i = 0; i < n; i += kChunk) {
          const int64_t end = std::min(n, i + kChunk), rows = end - i;
          at::Tensor chunk = lp.narrow(1, 0, rows);
          // Every member sees this batch before the next is taken: one pass over the data.
          for (int64_t k = 0; k < m; ++k) {
            Model* model = models_[static_cast<size_t>(k)];
            at::Tensor out = model->Net()->forward(Normalise(images_[static_cast<size_t>(k)].slice(0, i, end), model->Spec()));
            chunk[k].copy_(out.to(torch::kCPU, torch::kFloat32));
          }
          auto [pred, scores] = Vote(chunk, hard_);
          predictions_.slice(0, i, end).copy_(pred);
          probabilities_.slice(0, i, end).copy_(scores);
          members_.slice(1, i, end).copy_(chunk.argmax(2).to(torch::kUInt8));
        }
        for (int64_t k = 0; k < m; ++k) models_[static_cast<size_t>(k)]->Net()->train(was_training[static_cast<size_t>(k)]);
        at::Tensor y = labels_.to(torch::kCPU, torch::kUInt8);
        correct_ = predictions_.eq(y).sum().item<int64_t>();
        for (int64_t k = 0; k < m; ++k) member_correct_.push_back(members_[k].eq(y).sum().item<int64_t>());
        seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      });
    } catch (...) {
      SetError(CurrentExceptionMessage());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    ReleaseAll();
    const int64_t n = labels_.size(0);
    Napi::Object r = Napi::Object::New(env);
    r.Set("predictions", ToUint8(env, predictions_));
    r.Set("probabilities", ToFloat32(env, probabilities_));
    r.Set("memberPredictions", ToUint8(env, members_));
    r.Set("correct", static_cast<double>(correct_));
    Napi::Array mc = Napi::Array::New(env, member_correct_.size());
    for (size_t k = 0; k < member_correct_.size(); ++k) mc.Set(static_cast<uint32_t>(k), static_cast<double>(member_correct_[k]));
    r.Set("memberCorrect", mc);
    r.Set("count", static_cast<double>(n));
    r.Set("seconds", seconds_);
    deferred_.Resolve(r);
  }

  void OnError(const Napi::Error& e) override {
    ReleaseAll();
    deferred_.Reject(e.Value());
  }

 private:
  void ReleaseAll() {
    for (Model* model : models_) model->Release();
  }

  Napi::Promise::Deferred deferred_;
  std::vector<Model*> models_;
  std::vector<Napi::ObjectReference> refs_;
  std::vector<at::Tensor> images_;
  at::Tensor labels_;
  bool hard_;
  at::Tensor predictions_, probabilities_, members_;
  int64_t correct_ = 0;
  std::vector<int64_t> member_correct_;
  double seconds_ = 0;
};

bool ParseVote(const Napi::Object& opts) {
  std::string vote = GetString(opts, "vote", "hard");
  if (vote != "hard" && vote != "soft") throw RangeError("vote must be 'hard' or 'soft', got '" + vote + "'");
  return vote == "hard";
}

}  // namespace

Napi::Value EnsembleEvaluate(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    if (info.Length() < 2 || !info[0].IsArray()) throw TypeError("ensembleEvaluate(models[], dataset, options?)");
    Napi::Array arr = info[0].As<Napi::Array>();
    if (arr.Length() == 0) throw RangeError("an ensemble needs at least one model");
    Dataset* data = Dataset::FromJs(info[1], "dataset");
    Napi::Object opts = info.Length() > 2 && info[2].IsObject() ? info[2].As<Napi::Object>() : Napi::Object::New(info.Env());
    const bool hard = ParseVote(opts);
    std::vector<Model*> models;
    std::set<Model*> seen;
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Model* model = Model::FromJs(arr.Get(i), "an ensemble member");
      if (!seen.insert(model).second) throw RangeError("ensemble member " + std::to_string(i) + " is the same model as an earlier one");
      data->CheckCompatible(model->Spec(), model->Classes());
      if (!models.empty() && model->Classes() != models[0]->Classes()) throw RangeError("ensemble members disagree on the number of classes");
      models.push_back(model);
    }
    size_t acquired = 0;
    try {
      for (Model* model : models) {
        model->Acquire("evaluate in an ensemble");
        ++acquired;
      }
    } catch (...) {
      for (size_t i = 0; i < acquired; ++i) models[i]->Release();
      throw;
    }
    std::vector<Napi::ObjectReference> refs;
    std::vector<at::Tensor> images;
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      refs.push_back(Napi::Persistent(arr.Get(i).As<Napi::Object>()));
      images.push_back(data->Images(models[i]->Device()));
    }
    auto* worker = new EnsembleWorker(info.Env(), models, std::move(refs), std::move(images), data->Labels(torch::kCPU), hard);
    worker->Queue();
    return worker->Promise();
  });
}

Napi::Value EnsembleVote(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw TypeError("logProbs must be a Float32Array of members x images x classes");
    }
    auto lp = info[0].As<Napi::Float32Array>();
    const int64_t m = ArgInt(info, 1, "members"), c = ArgInt(info, 2, "classes");
    if (m <= 0 || c <= 0 || lp.ElementLength() == 0 || lp.ElementLength() % static_cast<size_t>(m * c) != 0) {
      throw RangeError("logProbs must hold members x images x classes values");
    }
    Napi::Object opts = Napi::Object::New(info.Env());
    if (info.Length() > 3) opts.Set("vote", info[3]);
    const bool hard = ParseVote(opts);
    const int64_t n = static_cast<int64_t>(lp.ElementLength()) / (m * c);
    auto [pred, scores] = Vote(torch::from_blob(lp.Data(), {m, n, c}, torch::kFloat32), hard);
    Napi::Object r = Napi::Object::New(info.Env());
    r.Set("predictions", ToUint8(info.Env(), pred));
    r.Set("probabilities", ToFloat32(info.Env(), scores));
    return r;
  });
}

}  // namespace torchlet
