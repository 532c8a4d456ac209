#!/usr/bin/env python3
"""Evaluate a torchlet state_dict with plain PyTorch on the MNIST test set.

    /usr/bin/python3 python/evaluate_weights.py --model super_light \\
        --weights weights/super_light.pt --data data/mnist

Prints one JSON object:

    {"model": ..., "correct": N, "count": 10000, "accuracy": N / 10000,
     "predictions_sha256": "<sha256 of the uint8 argmax predictions, in test-set order>"}

so that a parity test can compare PyTorch's predictions with torchlet's bit for bit.
The test set is read from ``<data>/t10k-images-idx3-ubyte.gz`` and
``<data>/t10k-labels-idx1-ubyte.gz`` (uncompressed files without ``.gz`` also work).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_models import MODELS as TINY  # noqa: E402
from torchlet_models import MODELS as REFERENCE, normalise  # noqa: E402

# The reference models and the tiny family (weights/tiny8k.pt).
MODELS = {**REFERENCE, **TINY}

# IDX type codes (http://yann.lecun.com/exdb/mnist/): only unsigned bytes occur in MNIST.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Reads an IDX file (gzip-compressed when the name ends in .gz) into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    dtype = _IDX_DTYPES.get(data[2])
    if dtype is None:
        raise ValueError(f"{path}: unknown IDX type code 0x{data[2]:02x}")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=dtype, offset=header)
    expected = int(np.prod(dims)) if dims else 1
    if array.size != expected:
        raise ValueError(f"{path}: header says {dims} ({expected} values) but the file holds {array.size}")
    return array.reshape(dims).copy()  # writable, so torch.from_numpy does not warn


def find_idx(data_dir: str, stem: str) -> str:
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{os.path.join(data_dir, stem)}.gz not found (nor the uncompressed file)")


def load_test_set(data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(find_idx(data_dir, "t10k-images-idx3-ubyte"))
    labels = read_idx(find_idx(data_dir, "t10k-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"unexpected test set shapes: images {images.shape}, labels {labels.shape}")
    return images, labels


def evaluate(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> dict:
    model.eval()
    predictions = np.empty(images.shape[0], dtype=np.uint8)
    with torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            batch = torch.from_numpy(images[start : start + batch_size])
            log_probs = model(normalise(batch))
            predictions[start : start + batch.shape[0]] = log_probs.argmax(dim=1).to(torch.uint8).numpy()
    correct = int((predictions == labels).sum())
    count = int(labels.shape[0])
    return {
        "correct": correct,
        "count": count,
        "accuracy": correct / count,
        "predictions_sha256": hashlib.sha256(predictions.tobytes()).hexdigest(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=sorted(MODELS))
    parser.add_argument("--weights", required=True, help="torch.save(state_dict) file, e.g. weights/super_light.pt")
    parser.add_argument("--data", default="data/mnist", help="folder holding t10k-*-ubyte.gz (default: data/mnist)")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args(argv)

    model = MODELS[args.model]()
    state = torch.load(args.weights, map_location="cpu")
    if not isinstance(state, dict):
        raise SystemExit(f"{args.weights}: expected a state_dict, got {type(state).__name__}")
    model.load_state_dict(state, strict=True)
    images, labels = load_test_set(args.data)
    result = {"model": args.model, **evaluate(model, images, labels, args.batch_size)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
