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

from evaluate_weights import find_idx, read_idx
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


def probe(model, last, x, labels, gain):
    """Fits `last`, the classifier's final layer, as a ridge-regression probe of the features
    it reads on x: random features then tell the digits apart well enough that predictions
    spread over the ten classes (with random classifiers most of these networks predict one
    class for every image, and an equality of predictions would test little). `gain` scales
    the fitted logits so that the log-probabilities spread over several units. squeezenet
    ends in a 1x1 convolution, ReLU and average pooling: the probe fits the convolution on the
    spatially averaged features, and a bias offset common to all classes (which softmax
    ignores) keeps the ReLU from clipping, so that pooling the convolution's output equals
    the probe's logits."""
    feats = []
    hook = last.register_forward_hook(lambda _m, inp, _out: feats.append(inp[0].detach()))
    with torch.no_grad():
        model(x)
    hook.remove()
    maps = torch.cat(feats).double()
    f = maps.mean((2, 3)) if isinstance(last, nn.Conv2d) else maps.flatten(1)
    f = torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], 1)
    gram = f.T @ f
    ridge = 1.0 * gram.diagonal().mean() * torch.eye(len(gram), dtype=f.dtype)
    w = gain * torch.linalg.solve(gram + ridge, f.T @ F.one_hot(labels, 10).double())
    weight, bias = w[:-1].T, w[-1]
    if isinstance(last, nn.Conv2d):
        per_position = torch.einsum("nchw,kc->nkhw", maps, weight) + bias[:, None, None]
        bias = bias - per_position.min() + 1
        weight = weight[:, :, None, None]
    with torch.no_grad():
        last.weight.copy_(weight)
        last.bias.copy_(bias)


def calibrate(model, x):
    """Sets every batch norm's running statistics to the statistics of x as it flows through
    the network (a cumulative average over batches, in training mode). With random running
    statistics the deep families (mobilenet, efficientnet, mnasnet) wash their activations
    out to constant features, so their outputs would not depend on the image."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for chunk in x.split(200):
            model(chunk)
        # A channel nearly constant over these images (a dead one) would have a variance near
        # 0, and any other image that wakes it would be scaled up a hundredfold: a network so
        # ill-conditioned that PyTorch's own float32 and float64 disagree by 1% (measured on
        # efficientnet_b3). A floor at half the layer's median variance keeps float32
        # rounding far below the tests' tolerance.
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_var.clamp_(min=0.5 * m.running_var.median().item())
    model.eval()


def onnx_weights(req):
    """Weights for tests/helpers/onnx-zoo.ts: randomised(), the batch norm statistics set from
    the first 2,000 MNIST training images (calibrate()), then the classifier's last layer
    fitted as a linear probe on the same images (probe())."""
    train_images = read_idx(find_idx(req["data"], "train-images-idx3-ubyte"))[:2000]
    train_labels = read_idx(find_idx(req["data"], "train-labels-idx1-ubyte"))[:2000]
    x = normalise(torch.from_numpy(train_images).reshape(-1, 1, 28, 28))
    labels = torch.from_numpy(train_labels).long()
    for i, name in enumerate(req["models"]):
        model = randomised(name, req, 5000 + i)
        calibrate(model, x)
        last = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]  # squeezenet ends in a conv
        probe(model, last, x, labels, 10.0)
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

        nchw, channels_last = distance(after[(torch.float32, torch.contiguous_format)]), distance(after[(torch.float32, torch.channels_last)])
        step = {"torchlet": distance(ours), "nchw": nchw, "channels_last": channels_last}
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
