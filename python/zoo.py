"""PyTorch twins of torchlet's model zoo (``src/zoo/``), built from torch and torchvision.

The eleven torchvision models come from ``torchvision.models`` itself (Debian's 0.14), adapted
to MNIST the way people do: ``num_classes=10``, and the first convolution replaced by one
with ``channels`` inputs and the same kernel, stride, padding and bias. ``SimpleConvNet`` is
pytorch/examples' MNIST ``Net``; ``ParallelCNN`` the parallel-branch CNN described in
``src/zoo/parallel-cnn.ts``; ``ViT`` a small Vision Transformer made of torch's own
``nn.TransformerEncoderLayer``; the tiny family (``tiny8k``, ``tiny5k``, ``tiny2k``) and its
factorized variant (``tiny8k_factorized``: 3x1 + 1x3 convolutions) come from ``tiny_models.py``. Their state_dict keys are the ones torchlet saves and loads::

    import torch
    from zoo import build, load, normalise

    model = build("resnet18")
    load(model, "runs/resnet18-noaug.pt")  # load_state_dict(torch.load(...), strict=True)
    model.eval()
    with torch.inference_mode():
        logits = model(normalise(images))  # images: uint8 (N, 28, 28)

torchlet's specs end in log-softmax (a stateless layer) and train with NLL, which is
cross-entropy on these logits.

Run as a script: ``python3 zoo.py`` prints every model's parameter count and state_dict
shapes as JSON; ``python3 zoo.py --macs`` adds multiply-accumulates per 28x28 image.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from typing import Callable, Dict

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from tiny_models import FACTORIZED
from tiny_models import MODELS as TINY

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (N, H, W) or (N, C, H, W), or floats in [0, 1], to the normalised float batch."""
    x = images.to(torch.float32)
    if images.dtype == torch.uint8:
        x = x / 255.0
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return (x - MNIST_MEAN) / MNIST_STD


class SimpleConvNet(nn.Module):
    """pytorch/examples' mnist/main.py ``Net``: 1,199,882 parameters."""

    def __init__(self, channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return self.fc2(x)


class ParallelCNN(nn.Module):
    """conv1, two branches (conv2_i grouped in 2, conv3_i) concatenated to 512 x 7 x 7, fc1-fc3."""

    def __init__(self, channels: int = 1, num_classes: int = 10, dropout: float = 0.5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.conv2_1 = nn.Conv2d(32, 64, 3, padding=1, groups=2)
        self.conv3_1 = nn.Conv2d(64, 256, 3, padding=1)
        self.conv2_2 = nn.Conv2d(32, 64, 3, padding=1, groups=2)
        self.conv3_2 = nn.Conv2d(64, 256, 3, padding=1)
        self.fc1 = nn.Linear(512 * 7 * 7, 1000)
        self.fc2 = nn.Linear(1000, 500)
        self.fc3 = nn.Linear(500, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        b1 = F.relu(self.conv3_1(F.max_pool2d(F.relu(self.conv2_1(x)), 2)))
        b2 = F.relu(self.conv3_2(F.max_pool2d(F.relu(self.conv2_2(x)), 2)))
        x = torch.flatten(torch.cat([b1, b2], 1), 1)
        x = self.dropout(F.relu(self.fc1(x)))
        x = self.dropout(F.relu(self.fc2(x)))
        return self.fc3(x)


class ViT(nn.Module):
    """7x7 patches, class token, position embedding, pre-norm nn.TransformerEncoderLayer, linear head."""

    def __init__(self, channels: int = 1, num_classes: int = 10, image_size: int = 28, patch: int = 7, dim: int = 64,
                 depth: int = 6, heads: int = 4, mlp: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        tokens = (image_size // patch) ** 2 + 1
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.empty(1, tokens, dim).normal_(std=0.02))
        self.conv_proj = nn.Conv2d(channels, dim, patch, stride=patch)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, mlp, dropout, activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.dropout(x + self.pos_embedding)
        x = self.encoder(x)
        return self.head(x[:, 0])


def _one_channel(model: nn.Module, channels: int) -> nn.Module:
    """Replaces the first convolution by one with `channels` inputs, same kernel, stride, padding and bias."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            setattr(parent, name.rpartition(".")[2], nn.Conv2d(
                channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                module.dilation, module.groups if module.groups == 1 else channels, module.bias is not None))
            return model
    raise ValueError("no convolution found")


def _torchvision(name: str) -> Callable[..., nn.Module]:
    def build(channels: int = 1, num_classes: int = 10) -> nn.Module:
        return _one_channel(getattr(torchvision.models, name)(weights=None, num_classes=num_classes), channels)
    return build


TORCHVISION = ["resnet18", "resnet34", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "squeezenet1_0",
               "squeezenet1_1", "efficientnet_b0", "efficientnet_b3", "mnasnet0_5", "mnasnet1_0"]

MODELS: Dict[str, Callable[..., nn.Module]] = {
    "simple_conv_net": SimpleConvNet,
    "parallel_cnn": ParallelCNN,
    "vit": ViT,
    **{name: _torchvision(name) for name in TORCHVISION},
    # The tiny family (src/models.ts), so that the interop tests and the MAC count cover it;
    # without its final log-softmax, to give logits like every model here.
    **{name: (lambda tiny=tiny: tiny()[:-1]) for name, tiny in {**TINY, **FACTORIZED}.items()},
}


def build(name: str, **kwargs) -> nn.Module:
    return MODELS[name](**kwargs)


def load(model: nn.Module, path: str) -> nn.Module:
    """load_state_dict(torch.load(path), strict=True) for a file torchlet wrote.

    torchlet writes a plain dict of tensors. torchvision's MNASNet alone refuses a state_dict
    without PyTorch's per-module version metadata (``_metadata``, which only PyTorch's own
    OrderedDict carries), so the metadata is supplied here: version 2, the architecture the
    twin builds.
    """
    state = OrderedDict(torch.load(path, map_location="cpu"))
    if isinstance(model, torchvision.models.MNASNet):
        state._metadata = OrderedDict({"": {"version": 2}})  # type: ignore[attr-defined]
    model.load_state_dict(state, strict=True)
    return model


def without_dropout(model: nn.Module) -> nn.Module:
    """Every dropout and stochastic depth at 0, as torchlet's withoutDropout(spec)."""
    for m in model.modules():
        if isinstance(m, (nn.Dropout, torchvision.ops.StochasticDepth)):
            m.p = 0.0
        if isinstance(m, nn.MultiheadAttention):
            m.dropout = 0.0
    return model


def count_macs(model: nn.Module, size: int = 28) -> int:
    """Multiply-accumulates for one image: convolutions, linear layers and attention's matmuls."""
    total = 0

    def conv(m: nn.Conv2d, _inp, out):
        nonlocal total
        total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m: nn.Linear, inp, _out):
        nonlocal total
        total += inp[0][0].numel() // m.in_features * m.in_features * m.out_features

    def attention(m: nn.MultiheadAttention, inp, _out):
        nonlocal total
        t, d = inp[0].shape[-2], m.embed_dim
        total += 3 * t * d * d + 2 * t * t * d  # in_proj, q k^T and attn v; out_proj is a Linear

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear))
        if isinstance(m, nn.MultiheadAttention):
            hooks.append(m.register_forward_hook(attention))
    # Train mode: in eval, nn.TransformerEncoderLayer's fast path bypasses the hooked modules.
    model.train()
    with torch.no_grad():
        model(torch.zeros(2, 1, size, size))
    for h in hooks:
        h.remove()
    return total


def describe(macs: bool = False) -> Dict[str, Dict[str, object]]:
    out: Dict[str, Dict[str, object]] = {}
    for name in MODELS:
        model = build(name)
        out[name] = {
            "params": sum(p.numel() for p in model.parameters()),
            "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
        }
        if macs:
            out[name]["macs"] = count_macs(model)
    return out


if __name__ == "__main__":
    print(json.dumps(describe(macs="--macs" in sys.argv[1:])))
