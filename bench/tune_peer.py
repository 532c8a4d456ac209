#!/usr/bin/python3
"""The Optuna side of bench/tune.ts: runs Debian's Optuna 3.1 TPE or random sampler on
the benchmark functions and prints, per seed, the best-so-far value after every trial and
the wall time of the study (the objective is trivial, so that is the sampler's time).

  /usr/bin/python3 bench/tune_peer.py --function branin --sampler tpe --seeds 0-29 --trials 100

The functions are defined the same way in bench/tune.ts (checked there on known points).
"""
import argparse
import json
import math
import sys
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)

H6_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
H6_C = [1.0, 1.2, 3.0, 3.2]
H6_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]
MIXED_OFFSET = {"a": 2.0, "b": 0.0, "c": 1.0, "d": 3.0}


def branin(t):
    x = t.suggest_float("x", -5, 10)
    y = t.suggest_float("y", 0, 15)
    b = 5.1 / (4 * math.pi**2)
    return (y - b * x * x + 5 / math.pi * x - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10


def hartmann6(t):
    x = [t.suggest_float(f"x{i}", 0, 1) for i in range(6)]
    return -sum(H6_C[i] * math.exp(-sum(H6_A[i][j] * (x[j] - H6_P[i][j]) ** 2 for j in range(6))) for i in range(4))


def rosenbrock5(t):
    x = [t.suggest_float(f"x{i}", -2.048, 2.048) for i in range(5)]
    f = sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(4))
    return math.log1p(f)


def mixed(t):
    x = t.suggest_float("x", -5, 5)
    n = t.suggest_int("n", 1, 10)
    c = t.suggest_categorical("c", ["a", "b", "c", "d"])
    return (x - 1.5) ** 2 + (n - 7) ** 2 / 4 + MIXED_OFFSET[c]


FUNCTIONS = {"branin": branin, "hartmann6": hartmann6, "rosenbrock5": rosenbrock5, "mixed": mixed}


def seeds(spec):
    out = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--function", required=True, choices=sorted(FUNCTIONS))
    ap.add_argument("--sampler", required=True, choices=["tpe", "random"])
    ap.add_argument("--seeds", default="0-29")
    ap.add_argument("--trials", type=int, default=100)
    a = ap.parse_args()
    out = []
    for seed in seeds(a.seeds):
        sampler = optuna.samplers.TPESampler(seed=seed) if a.sampler == "tpe" else optuna.samplers.RandomSampler(seed=seed)
        study = optuna.create_study(sampler=sampler)
        t0 = time.perf_counter()
        study.optimize(FUNCTIONS[a.function], n_trials=a.trials)
        seconds = time.perf_counter() - t0
        best, curve = math.inf, []
        for t in study.trials:
            best = min(best, t.value)
            curve.append(best)
        out.append({"seed": seed, "curve": curve, "seconds": seconds})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
