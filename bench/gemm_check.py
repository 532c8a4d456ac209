"""Times the products of torchlet's large fully connected layers through the two libraries
libtorch loads: OpenBLAS (what at::linear calls on Debian) and oneDNN's sgemm (what
native/linear.cc calls). Same threads, preallocated outputs, medians of 15 after 2 warm-ups.

    /usr/bin/python3 bench/gemm_check.py [--threads N]
"""
import argparse
import ctypes
import os
import statistics
import time

import torch

SHAPES = [
    # (name, rows, in, out): y[rows, out] = x[rows, in] @ w[out, in]^T
    ("parallel_cnn fc1, batch 64", 64, 25088, 1000),
    ("parallel_cnn fc2, batch 64", 64, 1000, 500),
    ("simple_conv_net fc1, batch 64", 64, 9216, 128),
    ("vit in_proj, batch 64 x 17 tokens", 1088, 64, 192),
    ("vit linear1, batch 64 x 17 tokens", 1088, 64, 256),
]


def median_ms(fn):
    fn()
    fn()
    times = []
    for _ in range(15):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        dnnl = ctypes.CDLL("libdnnl.so.2")
    except OSError as err:
        raise SystemExit(f"libdnnl.so.2 is not loadable ({err}); Debian's libtorch links it, other builds may not")
    sgemm = dnnl.dnnl_sgemm
    i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
    sgemm.argtypes = [ctypes.c_char, ctypes.c_char, i64, i64, i64, f32, ptr, i64, ptr, i64, f32, ptr, i64]
    sgemm.restype = ctypes.c_int

    def onednn(ta, tb, m, n, k, a, b, c):
        lda = k if ta == b"N" else m
        ldb = n if tb == b"N" else k
        status = sgemm(ta, tb, m, n, k, 1.0, a.data_ptr(), lda, b.data_ptr(), ldb, 0.0, c.data_ptr(), n)
        if status != 0:
            raise RuntimeError(f"dnnl_sgemm failed with status {status}")

    print(f"{args.threads} threads; ms, OpenBLAS (torch.mm) / oneDNN (dnnl_sgemm)")
    print(f"{'product':36} {'forward':>16} {'input gradient':>16} {'weight gradient':>16}")
    for name, rows, fan_in, fan_out in SHAPES:
        x, w, g = torch.randn(rows, fan_in), torch.randn(fan_out, fan_in), torch.randn(rows, fan_out)
        y, gx, gw = torch.empty(rows, fan_out), torch.empty(rows, fan_in), torch.empty(fan_out, fan_in)
        cells = []
        for blas, dnn in [
            (lambda: torch.mm(x, w.t(), out=y), lambda: onednn(b"N", b"T", rows, fan_out, fan_in, x, w, y)),
            (lambda: torch.mm(g, w, out=gx), lambda: onednn(b"N", b"N", rows, fan_in, fan_out, g, w, gx)),
            (lambda: torch.mm(g.t(), x, out=gw), lambda: onednn(b"T", b"N", fan_out, fan_in, rows, g, x, gw)),
        ]:
            cells.append(f"{median_ms(blas):.3f} / {median_ms(dnn):.3f}")
        print(f"{name:36} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}")


if __name__ == "__main__":
    main()
