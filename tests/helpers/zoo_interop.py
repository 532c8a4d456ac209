"""The PyTorch side of tests/zoo.test.ts. Reads a JSON request on stdin, writes JSON.

export: for each model, its twin (python/zoo.py) from a fixed seed with non-trivial
        BatchNorm running statistics, saved with torch.save(state_dict), and its eval-mode
        logits on the request's images.
onnx-weights: randomised twins' weights for the ONNX export tests (tests/helpers/onnx-zoo.ts).
check:  for each model, torchlet's saved weights loaded strictly and their logits; and one
        SGD step from torchlet's "before" weights on the request's batch, compared tensor
        by tensor with torchlet's "after" weights.
"""

import json
import sys

import torch
import torch.nn.functional as F
from torch import nn

from zoo import build, describe, load, normalise, without_dropout


def images(req, key):
    size = req.get("size", 28)
    return normalise(torch.tensor(req[key], dtype=torch.uint8).reshape(-1, 1, size, size))


def twin(name, req):
    return build(name, **({"image_size": req["size"]} if name == "vit" and "size" in req else {}))


def randomised(name, req, seed):
    """The twin from a fixed seed, with BatchNorm running statistics and affine parameters that are not 0 and 1."""
    torch.manual_seed(seed)
    model = twin(name, req)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model.eval()


def export(req):
    out = {}
    x = images(req, "pixels")
    for i, name in enumerate(req["models"]):
        model = randomised(name, req, 1000 + i)
        torch.save(model.state_dict(), f"{req['dir']}/{name}-pytorch.pt")
        with torch.inference_mode():
            out[name] = model(x).reshape(-1).tolist()
    return out


def onnx_weights(req):
    """Weights for tests/helpers/onnx-zoo.ts: randomised() with the classifier's last linear
    (or convolution) layer scaled up so that the logits spread over several units (at initialisation most of
    these networks give nearly uniform probabilities, which would make a comparison weak)."""
    for i, name in enumerate(req["models"]):
        model = randomised(name, req, 5000 + i)
        last = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]  # squeezenet ends in a conv
        with torch.no_grad():
            last.weight.mul_(req.get("classifier_gain", 30.0))
        torch.save(model.state_dict(), f"{req['dir']}/{name}-onnx.pt")
    return {"saved": req["models"]}


def check(req):
    out = {}
    x = images(req, "pixels")
    batch = images(req, "batch")
    labels = torch.tensor(req["labels"], dtype=torch.int64)
    for name in req["models"]:
        model = twin(name, req)
        load(model, f"{req['dir']}/{name}-torchlet.pt")
        model.eval()
        with torch.inference_mode():
            logits = model(x).reshape(-1).tolist()
        out[name] = {"logits": logits}
        if name not in req.get("steps", req["models"]):
            continue
        # The step in float32, as torchlet takes it, and in float64 as the exact answer: deep
        # networks at batch 8 amplify rounding (BatchNorm over few values), so torchlet is held
        # to PyTorch's own float32 distance from the exact step, in either memory layout.
        # torchlet runs convolutions channels-last on CPU (oneDNN), whose rounding differs
        # from the NCHW kernels', so PyTorch is measured in both layouts.
        after = {}
        for dtype, layout in ((torch.float32, torch.contiguous_format), (torch.float32, torch.channels_last), (torch.float64, torch.contiguous_format)):
            model = without_dropout(twin(name, req))
            load(model, f"{req['dir']}/{name}-before.pt")
            model.to(dtype).to(memory_format=layout).train()
            opt = torch.optim.SGD(model.parameters(), lr=req["lr"])
            opt.zero_grad()
            F.cross_entropy(model(batch.to(dtype).contiguous(memory_format=layout)), labels).backward()
            opt.step()
            after[(dtype, layout)] = model.state_dict()
        ours = torch.load(f"{req['dir']}/{name}-after.pt")
        exact = after[(torch.float64, torch.contiguous_format)]
        assert list(ours) == list(exact), (name, [k for k in ours if k not in exact], [k for k in exact if k not in ours])

        def distance(a):
            # Largest difference from the exact step, relative to each tensor's magnitude (at least 1).
            return max(((a[k].double() - v.double()).abs().max().item() / max(1.0, v.double().abs().max().item()), k) for k, v in exact.items())

        step = {
            "torchlet": distance(ours),
            "pytorch": max(distance(after[(torch.float32, torch.contiguous_format)]), distance(after[(torch.float32, torch.channels_last)])),
        }
        out[name]["step"] = step
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    request = json.load(sys.stdin)
    action = request["action"]
    if action == "describe":
        print(json.dumps(describe()))
    elif action == "export":
        print(json.dumps(export(request)))
    elif action == "onnx-weights":
        print(json.dumps(onnx_weights(request)))
    else:
        print(json.dumps(check(request)))
