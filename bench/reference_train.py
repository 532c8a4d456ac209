#!/usr/bin/env python3
"""The PyTorch reference run that `npm run bench` (figure 5) puts beside torchlet.

    /usr/bin/python3 bench/reference_train.py --data data/mnist            # 15 epochs, seed 42
    /usr/bin/python3 bench/reference_train.py --data data/mnist --json     # JSON lines, for bench/run.ts

A plain PyTorch training script, written the way the reference recipe is usually run:
SuperLight (python/torchlet_models.py, 4,842 parameters), AdamW(lr 0.01, weight decay
1e-4), OneCycleLR(max_lr 0.01, epochs 15, steps_per_epoch = len(train_loader), div_factor
10, final_div_factor 1000, pct_start 0.3, anneal 'cos', cycle_momentum with betas
0.85-0.95), NLL loss, and the torchvision pipeline: torchvision.datasets.MNIST handing PIL
images to RandomAffine(degrees=5, translate=(0.05, 0.05), shear=(-5, 5), fill=0) +
RandomPerspective(distortion_scale=0.2, p=0.1, fill=0) + ToTensor + Normalize, through a
DataLoader with batch 128, shuffle and 2 workers, at PyTorch's default thread count
(--threads overrides it). After every epoch it measures train and test accuracy in eval
mode (un-augmented, DataLoaders of batch 1000, torch.no_grad), as torchlet's train() does.

The wall time covers everything from building the model and loaders to the last
evaluation; Python's start-up and reading the IDX files are outside it (torchlet's figure
likewise starts with the data already loaded).

torchvision.datasets.MNIST reads the uncompressed IDX files from <root>/MNIST/raw; the
gzip files in --data are decompressed into a temporary root for the run (nothing is
downloaded).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Iterator, List, Optional

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets, transforms

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from torchlet_models import MNIST_MEAN, MNIST_STD, SuperLight, count_params  # noqa: E402

BATCH_SIZE = 128
EVAL_BATCH_SIZE = 1000
WORKERS = 2
EPOCHS = 15
SEED = 42

#: The reference augmentation, as torchvision runs it on PIL images.
TRAIN_TRANSFORM = transforms.Compose(
    [
        transforms.RandomAffine(degrees=5, translate=(0.05, 0.05), shear=(-5, 5), fill=0),
        transforms.RandomPerspective(distortion_scale=0.2, p=0.1, fill=0),
        transforms.ToTensor(),
        transforms.Normalize((MNIST_MEAN,), (MNIST_STD,)),
    ]
)
EVAL_TRANSFORM = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])

_IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@contextlib.contextmanager
def torchvision_root(data_dir: str) -> Iterator[str]:
    """A temporary torchvision root holding MNIST/raw/<idx files>, decompressed from data_dir."""
    root = tempfile.mkdtemp(prefix="torchlet-bench-mnist-")
    try:
        raw = os.path.join(root, "MNIST", "raw")
        os.makedirs(raw)
        for stem in _IDX_STEMS:
            src = os.path.join(data_dir, stem + ".gz")
            dest = os.path.join(raw, stem)
            if os.path.exists(src):
                with gzip.open(src, "rb") as fin, open(dest, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
            elif os.path.exists(os.path.join(data_dir, stem)):
                shutil.copyfile(os.path.join(data_dir, stem), dest)
            else:
                raise FileNotFoundError(f"{src} not found (nor the uncompressed file)")
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def mnist(root: str, train: bool, transform: transforms.Compose, limit: Optional[int] = None) -> Dataset:
    """torchvision's MNIST dataset (PIL images through `transform`), optionally its first `limit` items."""
    ds = datasets.MNIST(root, train=train, transform=transform, download=False)
    if limit is not None and limit < len(ds):
        return Subset(ds, range(limit))
    return ds


def train_loader(dataset: Dataset) -> DataLoader:
    """The reference training loader: batch 128, shuffled, 2 worker processes."""
    return DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=WORKERS)


def eval_loader(dataset: Dataset) -> DataLoader:
    return DataLoader(dataset, batch_size=EVAL_BATCH_SIZE, shuffle=False, num_workers=WORKERS)


def make_optimizer(
    model: torch.nn.Module, epochs: int, steps_per_epoch: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.OneCycleLR]:
    """AdamW + OneCycleLR exactly as the reference recipe (and torchlet's REFERENCE_RECIPE) has them."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=0.01,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        div_factor=10,
        final_div_factor=1000,
        pct_start=0.3,
        anneal_strategy="cos",
        cycle_momentum=True,
        base_momentum=0.85,
        max_momentum=0.95,
    )
    return optimizer, scheduler


def evaluate(model: torch.nn.Module, loader: DataLoader) -> tuple[float, float]:
    """(mean NLL loss, accuracy) in eval mode."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            loss_sum += float(F.nll_loss(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
            count += int(y.shape[0])
    return loss_sum / count, correct / count


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(HERE, "..", "data", "mnist"), help="folder holding the four MNIST .gz files")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: leave PyTorch's default)")
    parser.add_argument("--train-limit", type=int, default=None, help="use only the first N training images (smoke tests)")
    parser.add_argument("--test-limit", type=int, default=None, help="use only the first N test images (smoke tests)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per epoch and a final summary object")
    args = parser.parse_args(argv)

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    def emit(obj: dict, text: str) -> None:
        print(json.dumps(obj) if args.json else text, flush=True)

    with torchvision_root(args.data) as root:
        train_aug = mnist(root, True, TRAIN_TRANSFORM, args.train_limit)
        train_plain = mnist(root, True, EVAL_TRANSFORM, args.train_limit)
        test = mnist(root, False, EVAL_TRANSFORM, args.test_limit)

        start = time.perf_counter()
        torch.manual_seed(args.seed)
        model = SuperLight()
        loader = train_loader(train_aug)
        train_eval, test_eval = eval_loader(train_plain), eval_loader(test)
        optimizer, scheduler = make_optimizer(model, args.epochs, len(loader))
        history = []
        for epoch in range(args.epochs):
            epoch_start = time.perf_counter()
            model.train()
            for x, y in loader:
                optimizer.zero_grad()
                loss = F.nll_loss(model(x), y)
                loss.backward()
                optimizer.step()
                scheduler.step()
            train_loss, train_acc = evaluate(model, train_eval)
            test_loss, test_acc = evaluate(model, test_eval)
            record = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "test_loss": test_loss,
                "test_accuracy": test_acc,
                "seconds": time.perf_counter() - epoch_start,
            }
            history.append(record)
            emit(
                record,
                f"epoch {epoch + 1:2d}/{args.epochs}  train {100 * train_acc:.2f}%  test {100 * test_acc:.2f}%  {record['seconds']:.1f} s",
            )
        wall = time.perf_counter() - start

    summary = {
        "done": True,
        "wall_s": wall,
        "final_test_accuracy": history[-1]["test_accuracy"] if history else None,
        "epochs": args.epochs,
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "params": count_params(model),
        "train_images": len(train_aug),
        "test_images": len(test),
        "torch": torch.__version__,
    }
    emit(summary, f"{args.epochs} epochs in {wall:.1f} s, final test accuracy {100 * (summary['final_test_accuracy'] or 0):.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
