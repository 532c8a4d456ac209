"""PyTorch definitions of torchlet's three reference MNIST networks.

Each class is an ``nn.Sequential`` built layer for layer in the same order as
``src/models.ts``, so the flat state_dict keys ("0.weight", "1.running_mean",
"1.num_batches_tracked", ...) are identical to the ones torchlet saves and loads.

Loading the released weights (``weights/<name>.pt`` are plain ``torch.save(state_dict)``
files written by torchlet, and attached to each GitHub release)::

    import torch
    from torchlet_models import MODELS, normalise

    model = MODELS["super_light"]()
    model.load_state_dict(torch.load("weights/super_light.pt", map_location="cpu"), strict=True)
    model.eval()

    # images: uint8 tensor (N, 28, 28) or (N, 1, 28, 28) of raw MNIST pixels
    with torch.inference_mode():
        log_probs = model(normalise(images))   # (N, 10) log-probabilities
        predictions = log_probs.argmax(dim=1)

The reverse direction: weights trained in PyTorch and saved the usual way,
``torch.save(model.state_dict(), path)``, load into torchlet with ``model.load(path)``.
Save the state_dict, not the module: torchlet refuses a pickled ``nn.Module``.

Conventions shared with torchlet: every 3x3 convolution has padding 0 and a bias,
every dropout is 0.05, BatchNorm uses PyTorch's defaults (eps 1e-5, momentum 0.1),
and the network ends in ``LogSoftmax`` (train with NLL loss).  Inputs are pixels
scaled to [0, 1] and then normalised with ``MNIST_MEAN`` / ``MNIST_STD``.

Running this file prints each model's parameter count and state_dict shapes as JSON
(``tests/pytorch-interop.test.ts`` compares them with torchlet's ``stateShapes()``).
"""

from __future__ import annotations

import json
from typing import Callable, Dict, List

import torch
from torch import nn

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
DROPOUT = 0.05

#: Documented trainable-parameter counts (BatchNorm running statistics are buffers).
DOCUMENTED_PARAMS = {"light": 4738, "lightest": 4274, "super_light": 4842}


def normalise(images: torch.Tensor) -> torch.Tensor:
    """Raw uint8 MNIST pixels (N, 28, 28) or (N, 1, 28, 28), or floats already in
    [0, 1], to the normalised float32 (N, 1, 28, 28) batch the models expect."""
    x = images.to(torch.float32)
    if images.dtype == torch.uint8:
        x = x / 255.0
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return (x - MNIST_MEAN) / MNIST_STD


def _block(in_c: int, out_c: int, kernel: int, dropout: bool) -> List[nn.Module]:
    """conv -> BN -> ReLU (-> dropout): the unit Lightest and SuperLight are built from."""
    layers: List[nn.Module] = [nn.Conv2d(in_c, out_c, kernel), nn.BatchNorm2d(out_c), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(DROPOUT))
    return layers


def _normalised_trunk() -> List[nn.Module]:
    """Shared trunk of Lightest and SuperLight, from the input to conv5 (16 x 6 x 6)."""
    return [
        *_block(1, 4, 3, True),  # 0-3:   28 -> 26
        *_block(4, 8, 3, True),  # 4-7:   -> 24
        nn.MaxPool2d(2),  # 8:     -> 12
        *_block(8, 4, 1, False),  # 9-11:  1x1 transition
        *_block(4, 8, 3, True),  # 12-15: -> 10
        *_block(8, 12, 3, True),  # 16-19: -> 8
        *_block(12, 16, 3, False),  # 20-22: -> 6
    ]


class Light(nn.Sequential):
    """Light, 4,738 parameters: no batch norm, no dropout."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(1, 4, 3), nn.ReLU(),  # 0-1:   28 -> 26
            nn.Conv2d(4, 8, 3), nn.ReLU(),  # 2-3:   -> 24
            nn.MaxPool2d(2),  # 4:     -> 12
            nn.Conv2d(8, 4, 1), nn.ReLU(),  # 5-6
            nn.Conv2d(4, 8, 3), nn.ReLU(),  # 7-8:   -> 10
            nn.Conv2d(8, 12, 3), nn.ReLU(),  # 9-10:  -> 8
            nn.Conv2d(12, 16, 3), nn.ReLU(),  # 11-12: -> 6
            nn.MaxPool2d(2),  # 13:    -> 3
            nn.Conv2d(16, 10, 3),  # 14:    -> 1
            nn.Flatten(),  # 15
            nn.LogSoftmax(dim=1),  # 16
        )


class Lightest(nn.Sequential):
    """Lightest, 4,274 parameters: BN everywhere, a 1x1 squeeze to 8 channels before the classifier."""

    def __init__(self) -> None:
        super().__init__(
            *_normalised_trunk(),  # 0-22
            nn.MaxPool2d(2),  # 23: -> 3
            *_block(16, 8, 1, False),  # 24-26
            nn.Conv2d(8, 10, 3),  # 27: -> 1
            nn.Flatten(),  # 28
            nn.LogSoftmax(dim=1),  # 29
        )


class SuperLight(nn.Sequential):
    """SuperLight, 4,842 parameters: adaptive average pooling to 3x3 before the classifier."""

    def __init__(self) -> None:
        super().__init__(
            *_normalised_trunk(),  # 0-22
            nn.AdaptiveAvgPool2d(3),  # 23
            nn.Conv2d(16, 10, 3),  # 24: -> 1
            nn.Flatten(),  # 25
            nn.LogSoftmax(dim=1),  # 26
        )


MODELS: Dict[str, Callable[[], nn.Sequential]] = {
    "light": Light,
    "lightest": Lightest,
    "super_light": SuperLight,
}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe() -> Dict[str, Dict[str, object]]:
    """{name: {"params": n, "shapes": {state_dict key: shape}}} for every model."""
    out: Dict[str, Dict[str, object]] = {}
    for name, factory in MODELS.items():
        model = factory()
        out[name] = {
            "params": count_params(model),
            "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
        }
    return out


if __name__ == "__main__":
    info = describe()
    for name, expected in DOCUMENTED_PARAMS.items():
        got = info[name]["params"]
        if got != expected:
            raise SystemExit(f"{name}: {got} parameters, documented {expected}")
    print(json.dumps(info))
