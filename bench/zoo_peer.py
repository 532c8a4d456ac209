"""PyTorch's side of bench/zoo.ts: training and evaluation images/s for one zoo model.

Reads a JSON request on stdin: {"model", "threads", "train_batch", "train_steps",
"eval_batch", "eval_images", "reps"}; writes {"train": [img/s per rep], "eval": [...]}.
Plain PyTorch as people run it: NCHW, nn modules from python/zoo.py, SGD with momentum,
cross-entropy on the logits, eval under inference_mode.
"""

import json
import sys
import time

import torch
import torch.nn.functional as F

from zoo import build

req = json.load(sys.stdin)
torch.set_num_threads(req["threads"])
torch.manual_seed(0)
model = build(req["model"])
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
g = torch.Generator().manual_seed(1)
train_x = torch.randn(req["train_batch"] * req["train_steps"], 1, 28, 28, generator=g)
train_y = torch.randint(0, 10, (train_x.shape[0],), generator=g)
eval_x = torch.randn(req["eval_images"], 1, 28, 28, generator=g)


def train_once(steps):
    model.train()
    b = req["train_batch"]
    start = time.perf_counter()
    for s in range(steps):
        x, y = train_x[s * b:(s + 1) * b], train_y[s * b:(s + 1) * b]
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return steps * b / (time.perf_counter() - start)


def eval_once():
    model.eval()
    b = req["eval_batch"]
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, eval_x.shape[0], b):
            model(eval_x[i:i + b]).argmax(1)
    return eval_x.shape[0] / (time.perf_counter() - start)


train_once(2)
eval_once()
out = {"train": [], "eval": []}
for _ in range(req["reps"]):
    out["train"].append(train_once(req["train_steps"]))
    out["eval"].append(eval_once())
print(json.dumps(out))
