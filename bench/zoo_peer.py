"""PyTorch's side of bench/zoo.ts: a long-lived peer (bench/peer_protocol.py) that times
training and evaluation of one zoo model at a time, so that bench/zoo.ts can alternate its
repetitions with torchlet's while Python's start-up and model building stay untimed.

    /usr/bin/python3 bench/zoo_peer.py --threads 2

Plain PyTorch as people run it: NCHW, nn modules from python/zoo.py, SGD with momentum,
cross-entropy on the logits, eval under inference_mode. Requests:
  {"cmd": "load", "model", "train_batch", "train_steps", "eval_batch", "eval_images"}
        builds the model (seed 0) and its random images, and warms both passes up
  {"cmd": "train"}   images/s over train_steps steps
  {"cmd": "eval"}    images/s over eval_images images
  {"cmd": "quit"}
"""

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from peer_protocol import serve  # noqa: E402
from zoo import build  # noqa: E402


class Session:
    def __init__(self):
        self.req = None

    def load(self, req):
        torch.manual_seed(0)
        self.req = req
        self.model = build(req["model"])
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        g = torch.Generator().manual_seed(1)
        self.train_x = torch.randn(req["train_batch"] * req["train_steps"], 1, 28, 28, generator=g)
        self.train_y = torch.randint(0, 10, (self.train_x.shape[0],), generator=g)
        self.eval_x = torch.randn(req["eval_images"], 1, 28, 28, generator=g)
        self.train_once(2)
        self.eval_once()
        return {"params": sum(p.numel() for p in self.model.parameters())}

    def train_once(self, steps):
        self.model.train()
        b = self.req["train_batch"]
        start = time.perf_counter()
        for s in range(steps):
            x, y = self.train_x[s * b:(s + 1) * b], self.train_y[s * b:(s + 1) * b]
            self.opt.zero_grad()
            F.cross_entropy(self.model(x), y).backward()
            self.opt.step()
        return steps * b / (time.perf_counter() - start)

    def eval_once(self):
        self.model.eval()
        b = self.req["eval_batch"]
        start = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, self.eval_x.shape[0], b):
                self.model(self.eval_x[i:i + b]).argmax(1)
        return self.eval_x.shape[0] / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    session = Session()
    serve(
        {
            "load": session.load,
            "train": lambda _: session.train_once(session.req["train_steps"]),
            "eval": lambda _: session.eval_once(),
        }
    )


if __name__ == "__main__":
    main()
