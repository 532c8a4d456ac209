"""PyTorch twins of torchlet's tiny models (src/models.ts: tiny8k, tiny5k, tiny2k).

Built layer for layer in the same order, so the flat state_dict keys match the ones
torchlet saves. Convolutions followed by batch norm have no bias (the norm's shift takes
its place); the classifier is a 1x1 convolution after global average pooling; the output
is log-probabilities. Inputs are normalised like the reference models
(``torchlet_models.normalise``)::

    import torch
    from tiny_models import MODELS
    from torchlet_models import normalise

    model = MODELS["tiny8k"]()
    model.load_state_dict(torch.load("weights/tiny8k.pt", map_location="cpu"), strict=True)
    model.eval()

``zoo.py`` takes these twins into its registry: ``python3 python/zoo.py --macs`` prints their
parameter counts, state_dict shapes and multiply-adds per image, and ``tests/tiny.test.ts``
checks them against torchlet's models (weights both ways, equal logits).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple, Union

from torch import nn


Size = Union[int, Tuple[int, int]]


def _bn_block(in_c: int, out_c: int, kernel: Size, padding: Size = 0, groups: int = 1) -> List[nn.Module]:
    return [nn.Conv2d(in_c, out_c, kernel, padding=padding, groups=groups, bias=False), nn.BatchNorm2d(out_c), nn.ReLU()]


def _tiny(widths: List[int], squeeze: int | None, factorized: bool = False, separable: bool = False) -> nn.Sequential:
    """widths: [c1, c2, c3, ...]: c1 padded 3x3, c2 3x3, max-pool, (1x1 squeeze), then 3x3s.

    factorized: each 3x3 is a 3x1 then a 1x3 convolution, each with its batch norm and ReLU.
    separable: each 3x3 after the first is a depthwise 3x3 then a 1x1, each with its batch
    norm and ReLU.
    """

    def unit(in_c: int, out_c: int, padding: int = 0) -> List[nn.Module]:
        if separable and in_c > 1:
            return [*_bn_block(in_c, in_c, 3, padding, groups=in_c), *_bn_block(in_c, out_c, 1)]
        if factorized:
            return [*_bn_block(in_c, out_c, (3, 1), (padding, 0)), *_bn_block(out_c, out_c, (1, 3), (0, padding))]
        return _bn_block(in_c, out_c, 3, padding)

    c1, c2, *rest = widths
    layers: List[nn.Module] = [*unit(1, c1, 1), *unit(c1, c2), nn.MaxPool2d(2)]
    prev = c2
    if squeeze is not None:
        layers += _bn_block(prev, squeeze, 1)
        prev = squeeze
    for c in rest:
        layers += unit(prev, c)
        prev = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(prev, 10, 1), nn.Flatten(), nn.LogSoftmax(dim=1)]
    return nn.Sequential(*layers)


MODELS: Dict[str, Callable[[], nn.Sequential]] = {
    "tiny8k": lambda: _tiny([12, 32, 36, 36, 36, 36], squeeze=None, separable=True),
    "tiny5k": lambda: _tiny([8, 20, 28, 28, 28, 28], squeeze=None, separable=True),
    "tiny2k": lambda: _tiny([8, 14, 14, 14, 14, 14], squeeze=None, separable=True),
}

# Factorized variants (3x1 + 1x3 for every 3x3), twins of ``tinyNet(..., { factorized: true })``
# in src/models.ts: the first (plain) tiny8k's widths, as tests/tiny.test.ts builds it.
FACTORIZED: Dict[str, Callable[[], nn.Sequential]] = {
    "tiny8k_factorized": lambda: _tiny([8, 16, 16, 16, 16], squeeze=10, factorized=True),
}
