#!/usr/bin/env python3
"""The PyTorch side of `npm run bench`: a long-lived worker that bench/run.ts drives.

    /usr/bin/python3 bench/pytorch_bench.py --data data/mnist --threads 2

It reads one JSON request per line on stdin and answers each with one JSON line on
stdout ({"ok": true, "result": {...}} or {"ok": false, "error": "..."}), so that run.ts
can alternate torchlet and PyTorch repetitions while Python's start-up, imports and data
loading stay outside every timing. All timings are taken here, around the measured loop
only. Anything else written to stdout (warnings, prints) is redirected to stderr.

Requests:
  {"cmd": "hello"}                      versions, thread counts, parameter count
  {"cmd": "train_init", "id", "kind", "layout"?, "images", "epochs"}
        kind "memory": data in memory as a uint8 tensor, no augmentation
        kind "memory_aug": the same plus the reference augmentation done in torch on the
             batch (affine + perspective matrices -> one sampling grid -> grid_sample)
        kind "reference": torchvision's MNIST + RandomAffine/RandomPerspective on PIL
             images through a DataLoader (batch 128, shuffle, 2 workers) at PyTorch's
             default thread count, as bench/reference_train.py runs it
        layout "contiguous" (default) or "channels_last" (model and batches; memory kinds).
        A fresh SuperLight (seed 42) with AdamW + OneCycleLR over epochs x steps.
  {"cmd": "train_run", "id", "steps"?}  one epoch over the session's images (stopping
        after `steps` batches when given: the warm-up); returns seconds, samples, ...
  {"cmd": "eval_run", "layout", "images", "batch", "chunk"?}  eval-mode pass over the
        test set under inference_mode; layout "contiguous" or "channels_last", forward
        passes of at most `chunk` rows (default: the whole batch)
  {"cmd": "predict_run", "count", "offset"}  single-image latencies in nanoseconds
  {"cmd": "quit"}
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from evaluate_weights import find_idx, read_idx  # noqa: E402
from peer_protocol import serve  # noqa: E402
from torchlet_models import MNIST_MEAN, MNIST_STD, SuperLight, count_params  # noqa: E402

try:
    import torchvision

    import reference_train as ref  # needs torchvision (and PIL)

    TORCHVISION: Optional[str] = torchvision.__version__
    TORCHVISION_ERROR = ""
except ImportError as err:  # python3-torchvision not installed: the reference pipeline is unavailable
    ref = None  # type: ignore[assignment]
    TORCHVISION = None
    TORCHVISION_ERROR = str(err)

SEED = 42
BATCH_SIZE = 128

# The reference augmentation's parameters (torchlet's REFERENCE_AUGMENT).
DEGREES = 5.0
TRANSLATE = (0.05, 0.05)
SHEAR_X = (-5.0, 5.0)
DISTORTION = 0.2
PERSPECTIVE_P = 0.1


# --------------------------------------------------------------------------------------
# Batched augmentation in torch: the best PyTorch configuration of figure 2.
# --------------------------------------------------------------------------------------


class BatchAugment:
    """RandomAffine + RandomPerspective with torchvision's parameter distributions, applied
    to a whole [N, 1, H, W] float batch at once: the per-image affine and perspective maps
    are composed into one 3x3 matrix, turned into a sampling grid and applied with a single
    bilinear grid_sample (zeros outside), the way a GPU pipeline would do it."""

    def __init__(self, height: int, width: int) -> None:
        self.h, self.w = height, width
        ys = torch.arange(height, dtype=torch.float32) + 0.5
        xs = torch.arange(width, dtype=torch.float32) + 0.5
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        # Output pixel centres in edge coordinates, homogeneous: [H*W, 3].
        self.base = torch.stack([gx.reshape(-1), gy.reshape(-1), torch.ones(height * width)], 1)
        W, H = float(width), float(height)
        self.to_centre = torch.tensor([[1, 0, -W / 2], [0, 1, -H / 2], [0, 0, 1]], dtype=torch.float64)
        self.normalise = torch.tensor([[2 / W, 0, 0], [0, 2 / H, 0], [0, 0, 1]], dtype=torch.float64)
        self.edges_to_centres = torch.tensor([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]], dtype=torch.float64)
        self.centres_to_edges = torch.tensor([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], dtype=torch.float64)
        self.dw = int(DISTORTION * (width // 2))
        self.dh = int(DISTORTION * (height // 2))

    def matrices(self, n: int) -> torch.Tensor:
        """[n, 3, 3] maps from output pixel (edge coordinates) to grid_sample's [-1, 1], drawn
        as torchvision's RandomAffine.get_params and RandomPerspective draw them."""
        f64 = torch.float64
        u = lambda lo, hi: torch.rand(n, dtype=f64) * (hi - lo) + lo  # noqa: E731
        angle = u(-DEGREES, DEGREES)
        tx = torch.round(u(-TRANSLATE[0] * self.w, TRANSLATE[0] * self.w))
        ty = torch.round(u(-TRANSLATE[1] * self.h, TRANSLATE[1] * self.h))
        shx = u(*SHEAR_X)
        m = self.affine(angle, tx, ty, shx)
        chosen = (torch.rand(n) < PERSPECTIVE_P).nonzero().flatten()
        k = int(chosen.numel())
        if k:
            m[chosen] = m[chosen] @ self.perspective(k)
        return m.to(torch.float32)

    def affine(self, angle: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, shx: torch.Tensor) -> torch.Tensor:
        """torchvision's _get_inverse_affine_matrix (scale 1, no y shear) about the image centre."""
        n = angle.shape[0]
        rot, sx = torch.deg2rad(angle), torch.deg2rad(shx)
        a, c = torch.cos(rot), torch.sin(rot)
        b = -torch.cos(rot) * torch.tan(sx) - torch.sin(rot)
        d = -torch.sin(rot) * torch.tan(sx) + torch.cos(rot)
        m = torch.zeros(n, 3, 3, dtype=torch.float64)
        m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1], m[:, 2, 2] = d, -b, -c, a, 1
        m[:, 0, 2] = -(m[:, 0, 0] * tx + m[:, 0, 1] * ty)
        m[:, 1, 2] = -(m[:, 1, 0] * tx + m[:, 1, 1] * ty)
        return self.normalise @ m @ self.to_centre

    def perspective(self, k: int) -> torch.Tensor:
        """[k, 3, 3] RandomPerspective maps (torchvision's get_params and _get_perspective_coeffs)."""
        w, h, dw, dh = self.w, self.h, self.dw, self.dh
        lo_x = torch.randint(0, dw + 1, (k, 2))  # top-left x, bottom-left x
        hi_x = torch.randint(w - dw - 1, w, (k, 2))  # top-right x, bottom-right x
        lo_y = torch.randint(0, dh + 1, (k, 2))  # top-left y, top-right y
        hi_y = torch.randint(h - dh - 1, h, (k, 2))  # bottom-right y, bottom-left y
        end = torch.stack(
            [
                torch.stack([lo_x[:, 0], lo_y[:, 0]], 1),
                torch.stack([hi_x[:, 0], lo_y[:, 1]], 1),
                torch.stack([hi_x[:, 1], hi_y[:, 0]], 1),
                torch.stack([lo_x[:, 1], hi_y[:, 1]], 1),
            ],
            1,
        ).to(torch.float64)  # [k, 4, 2]
        return self.homography(end)

    def homography(self, end: torch.Tensor) -> torch.Tensor:
        """[k, 3, 3] output-to-input maps for perspective corners `end` [k, 4, 2] (pixel centres)."""
        w, h, k = self.w, self.h, end.shape[0]
        start = torch.tensor([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=torch.float64).expand(k, 4, 2)
        # Homography H with H(end[i]) = start[i]: eight equations in eight unknowns.
        x, y = end[..., 0], end[..., 1]
        uu, vv = start[..., 0], start[..., 1]
        zeros, ones = torch.zeros_like(x), torch.ones_like(x)
        r1 = torch.stack([x, y, ones, zeros, zeros, zeros, -uu * x, -uu * y], -1)
        r2 = torch.stack([zeros, zeros, zeros, x, y, ones, -vv * x, -vv * y], -1)
        A = torch.stack([r1, r2], 2).reshape(k, 8, 8)
        rhs = torch.stack([uu, vv], 2).reshape(k, 8)
        coeffs = torch.linalg.solve(A, rhs)
        hom = torch.cat([coeffs, torch.ones(k, 1, dtype=torch.float64)], 1).reshape(k, 3, 3)
        return self.centres_to_edges @ hom @ self.edges_to_centres

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.warp(x, self.matrices(x.shape[0]))

    def warp(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        src = self.base.unsqueeze(0) @ theta.transpose(1, 2)  # [N, H*W, 3]
        grid = (src[..., :2] / src[..., 2:]).view(n, self.h, self.w, 2)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# --------------------------------------------------------------------------------------
# Sessions: one model + optimizer + schedule per training figure.
# --------------------------------------------------------------------------------------


class TrainSession:
    def __init__(self, kind: str, layout: str, images: int, epochs: int, bench: "Bench") -> None:
        if kind not in ("memory", "memory_aug", "reference"):
            raise ValueError(f"unknown train kind {kind!r}")
        if layout not in ("contiguous", "channels_last") or (kind == "reference" and layout != "contiguous"):
            raise ValueError(f"unsupported layout {layout!r} for {kind!r}")
        self.kind, self.images, self.bench = kind, images, bench
        self.format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        torch.manual_seed(SEED)
        self.model = SuperLight().to(memory_format=self.format)
        self.steps_per_epoch = math.ceil(images / BATCH_SIZE)
        if kind == "reference":
            if ref is None:
                raise RuntimeError(f"the reference pipeline needs torchvision: {TORCHVISION_ERROR}")
            dataset = ref.mnist(bench.torchvision_root(), True, ref.TRAIN_TRANSFORM, images)
            self.loader = ref.train_loader(dataset)
            self.optimizer, self.scheduler = ref.make_optimizer(self.model, epochs, len(self.loader))
        else:
            assert ref is None or ref.BATCH_SIZE == BATCH_SIZE
            self.optimizer, self.scheduler = make_optimizer(self.model, epochs, self.steps_per_epoch)
            self.augment = BatchAugment(28, 28) if kind == "memory_aug" else None

    def run(self, max_steps: Optional[int]) -> Dict[str, Any]:
        threads = self.bench.ref_threads if self.kind == "reference" else self.bench.threads
        torch.set_num_threads(threads)
        try:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            steps, samples = self._epoch_reference(max_steps) if self.kind == "reference" else self._epoch_memory(max_steps)
            seconds, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        finally:
            torch.set_num_threads(self.bench.threads)
        return {"seconds": seconds, "cpu_seconds": cpu, "steps": steps, "samples": samples, "threads": threads}

    def _step(self, x: torch.Tensor, y: torch.Tensor, loss_sum: torch.Tensor, correct: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        out = self.model(x)
        loss = F.nll_loss(out, y)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():  # the running statistics torchlet's trainEpoch keeps too
            loss_sum.add_(loss.detach() * y.shape[0])
            correct.add_(out.argmax(1).eq(y).sum())

    def _epoch_memory(self, max_steps: Optional[int]) -> tuple[int, int]:
        images, labels = self.bench.train_images[: self.images], self.bench.train_labels[: self.images]
        n = images.shape[0]
        self.model.train()
        perm = torch.randperm(n)
        loss_sum, correct = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.int64)
        steps = samples = 0
        for start in range(0, n, BATCH_SIZE):
            if max_steps is not None and steps >= max_steps:
                break
            idx = perm[start : start + BATCH_SIZE]
            x = images.index_select(0, idx).to(torch.float32).div_(255.0)
            if self.augment is not None:
                x = self.augment(x)
            x = x.sub_(MNIST_MEAN).div_(MNIST_STD).contiguous(memory_format=self.format)
            y = labels.index_select(0, idx)
            self._step(x, y, loss_sum, correct)
            steps += 1
            samples += int(idx.shape[0])
        float(loss_sum), int(correct)  # synchronise, as trainEpoch's result does
        return steps, samples

    def _epoch_reference(self, max_steps: Optional[int]) -> tuple[int, int]:
        self.model.train()
        loss_sum, correct = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.int64)
        steps = samples = 0
        for x, y in self.loader:  # a new iterator starts the workers, as every epoch of a real run does
            self._step(x, y, loss_sum, correct)
            steps += 1
            samples += int(y.shape[0])
            if max_steps is not None and steps >= max_steps:
                break
        float(loss_sum), int(correct)
        return steps, samples


def make_optimizer(model: torch.nn.Module, epochs: int, steps_per_epoch: int) -> tuple[Any, Any]:
    if ref is not None:
        return ref.make_optimizer(model, epochs, steps_per_epoch)
    # Without torchvision reference_train cannot be imported; the same recipe, spelled out.
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.01, epochs=epochs, steps_per_epoch=steps_per_epoch, div_factor=10, final_div_factor=1000,
        pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
    )  # fmt: skip
    return optimizer, scheduler


class Bench:
    def __init__(self, data_dir: str, threads: int, ref_threads: int) -> None:
        self.data_dir = data_dir
        self.default_threads = torch.get_num_threads()  # before anything changes it
        self.threads = threads if threads > 0 else self.default_threads
        self.ref_threads = ref_threads if ref_threads > 0 else self.default_threads
        torch.set_num_threads(self.threads)
        train = read_idx(find_idx(data_dir, "train-images-idx3-ubyte"))
        test = read_idx(find_idx(data_dir, "t10k-images-idx3-ubyte"))
        self.train_images = torch.from_numpy(train).unsqueeze(1)  # uint8 [N, 1, 28, 28]
        self.train_labels = torch.from_numpy(read_idx(find_idx(data_dir, "train-labels-idx1-ubyte")).astype(np.int64))
        self.test_np = test  # uint8 [N, 28, 28], the decoded images of figure 4
        self.test_images = torch.from_numpy(test).unsqueeze(1)
        self.test_labels = torch.from_numpy(read_idx(find_idx(data_dir, "t10k-labels-idx1-ubyte")).astype(np.int64))
        self.sessions: Dict[str, TrainSession] = {}
        self._root_ctx: Any = None
        self._root: Optional[str] = None
        torch.manual_seed(SEED)
        self.eval_models = {"contiguous": SuperLight().eval()}
        cl = SuperLight()
        cl.load_state_dict(self.eval_models["contiguous"].state_dict())
        self.eval_models["channels_last"] = cl.to(memory_format=torch.channels_last).eval()
        self.predict_model = SuperLight().eval()

    def torchvision_root(self) -> str:
        if self._root is None:
            assert ref is not None
            self._root_ctx = ref.torchvision_root(self.data_dir)
            self._root = self._root_ctx.__enter__()
        return self._root

    def close(self) -> None:
        if self._root_ctx is not None:
            self._root_ctx.__exit__(None, None, None)
            self._root_ctx = self._root = None

    # -- requests ------------------------------------------------------------------------

    def hello(self, _: Dict[str, Any]) -> Dict[str, Any]:
        return {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": TORCHVISION,
            "torchvision_error": TORCHVISION_ERROR or None,
            "numpy": np.__version__,
            "default_threads": self.default_threads,
            "threads": self.threads,
            "ref_threads": self.ref_threads,
            "parallel_backend": next(
                (line.split(":", 1)[1].strip() for line in torch.__config__.parallel_info().splitlines() if "parallel backend" in line),
                None,
            ),
            "params": count_params(SuperLight()),
            "train_images": int(self.train_images.shape[0]),
            "test_images": int(self.test_images.shape[0]),
        }

    def train_init(self, req: Dict[str, Any]) -> Dict[str, Any]:
        session = TrainSession(str(req["kind"]), str(req.get("layout", "contiguous")), int(req["images"]), int(req["epochs"]), self)
        self.sessions[str(req["id"])] = session
        return {"steps_per_epoch": session.steps_per_epoch}

    def train_run(self, req: Dict[str, Any]) -> Dict[str, Any]:
        steps = req.get("steps")
        return self.sessions[str(req["id"])].run(int(steps) if steps is not None else None)

    def eval_run(self, req: Dict[str, Any]) -> Dict[str, Any]:
        """Batches of `batch` test images, normalised as a whole and fed to the model in
        forward passes of at most `chunk` rows (eval mode: the grouping changes nothing but
        speed; torchlet's evaluate caps its passes at 128 rows on CPU)."""
        layout, n, batch = str(req["layout"]), int(req["images"]), int(req["batch"])
        chunk = int(req.get("chunk") or batch)
        model = self.eval_models[layout]
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        images, labels = self.test_images[:n], self.test_labels[:n]
        start = time.perf_counter()
        with torch.inference_mode():
            loss_sum, correct = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.int64)
            for s in range(0, n, batch):
                xb = images[s : s + batch].to(torch.float32).div_(255.0).sub_(MNIST_MEAN).div_(MNIST_STD)
                yb = labels[s : s + batch]
                for c in range(0, xb.shape[0], chunk):
                    x = xb[c : c + chunk].contiguous(memory_format=fmt)
                    y = yb[c : c + chunk]
                    out = model(x)
                    loss_sum += F.nll_loss(out, y, reduction="sum")
                    correct += out.argmax(1).eq(y).sum()
            accuracy = int(correct) / n
            float(loss_sum)
        return {"seconds": time.perf_counter() - start, "count": n, "accuracy": accuracy, "threads": torch.get_num_threads()}

    def predict_run(self, req: Dict[str, Any]) -> Dict[str, Any]:
        count, offset = int(req["count"]), int(req["offset"])
        model, images = self.predict_model, self.test_np
        mean, std = MNIST_MEAN, MNIST_STD

        def predict(image: np.ndarray) -> int:
            """A decoded 28x28 uint8 image to a digit."""
            with torch.inference_mode():
                x = torch.from_numpy(image).to(torch.float32).div_(255.0).sub_(mean).div_(std).view(1, 1, 28, 28)
                return int(model(x).argmax(1))

        latencies = []
        digits = 0
        clock = time.perf_counter_ns
        for i in range(count):
            image = images[(offset + i) % images.shape[0]]
            t0 = clock()
            digits += predict(image)
            latencies.append(clock() - t0)
        return {"latencies_ns": latencies, "checksum": digits}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder holding the four MNIST .gz files")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads for every figure but the reference pipeline (default: PyTorch's)"
    )
    parser.add_argument(
        "--ref-threads", type=int, default=0, help="torch threads for the reference DataLoader pipeline (default: PyTorch's)"
    )
    args = parser.parse_args()

    bench = Bench(args.data, args.threads, args.ref_threads)
    try:
        serve(
            {
                "hello": bench.hello,
                "train_init": bench.train_init,
                "train_run": bench.train_run,
                "eval_run": bench.eval_run,
                "predict_run": bench.predict_run,
            }
        )
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
