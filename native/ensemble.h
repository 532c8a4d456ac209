// Ensembles: several models over the same images, combined by hard majority vote or by
// the mean of their probabilities (soft vote). Every batch goes through all members in one
// native pass, so an ensemble costs what its members cost and nothing more.
#pragma once

#include <napi.h>
#include <torch/torch.h>

namespace torchlet {

// log_probs: float [M, N, C] (members, images, classes). Returns (predictions uint8 [N],
// scores float [N, C]): for 'soft' the mean probability; for 'hard' each class's share of
// the members' votes. Ties in a hard vote go to the tied class with the highest mean
// probability, then to the lowest class index; ties in a soft vote to the lowest index.
std::pair<at::Tensor, at::Tensor> Vote(const at::Tensor& log_probs, bool hard);

// ensembleEvaluate(models[], dataset, { batchSize?, vote? }): Promise of { predictions,
// probabilities, memberPredictions (M x N), correct, memberCorrect[], count, seconds }.
Napi::Value EnsembleEvaluate(const Napi::CallbackInfo& info);
// ensembleVote(logProbs: Float32Array, members, classes, vote): { predictions, probabilities }.
Napi::Value EnsembleVote(const Napi::CallbackInfo& info);

}  // namespace torchlet
