"""The serving benchmark's peer: the seeds' own stack, FastAPI + uvicorn + PyTorch.

It serves the same SuperLight weights as `torchlet serve`, with the same preprocessing
(src/image/mnistify.ts) written in PIL and numpy, and answers POST /predict the way
torchlet does: the digit, the confidence, the probabilities, what preprocessing did, and
the 28x28 image as a base64 PNG. The benchmark starts it as

    python3 bench/serve_peer.py --port P --workers N

with TORCHLET_PEER_WEIGHTS naming the weights file: N uvicorn servers, each in its own
process with its own SO_REUSEPORT socket on P, so that the kernel spreads the connections
over the workers by their addresses. `uvicorn --workers N` shares one socket instead, and
whichever worker wakes first accepts every connection that is waiting: wrk opens its 16
connections at once, and one worker took them all while the other idled (28x28 at c16:
2 workers 700-843 req/s, 1 worker 815-842). torchlet's `--processes` spreads them evenly
(node:cluster's round robin), so this is the peer's fair counterpart.

One torch thread per worker: the image is tiny, and more threads only add hand-off cost
(measured: 1 is the fastest here).
"""
import argparse
import base64
import io
import multiprocessing
import os
import signal
import socket
import sys
import time

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from PIL import Image, UnidentifiedImageError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from torchlet_models import MODELS, normalise  # noqa: E402

torch.set_num_threads(int(os.environ.get("TORCHLET_PEER_THREADS", "1")))
MODEL = MODELS["super_light"]()
MODEL.load_state_dict(torch.load(os.environ["TORCHLET_PEER_WEIGHTS"], map_location="cpu"), strict=True)
MODEL.eval()

FRAME, BOX, NOISE_LEVEL, MIN_CONTRAST, BLACK_LEVEL = 28, 20, 51, 24, 8
MAX_PIXELS = 24_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

app = FastAPI(title="torchlet serving peer")


def gray_on_white(img: Image.Image) -> np.ndarray:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("L"))


def preprocess(data: bytes):
    if not data:
        raise HTTPException(400, "the image is empty")
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_PIXELS:
            raise HTTPException(413, "too many pixels")
        img.load()
    except UnidentifiedImageError:
        raise HTTPException(415, "not an image")
    except (OSError, SyntaxError, ValueError) as e:
        raise HTTPException(400, f"corrupt image: {e}")
    fmt = (img.format or "raw").lower()
    gray = gray_on_white(img)
    h, w = gray.shape
    lo, hi = int(gray.min()), int(gray.max())
    if hi - lo < MIN_CONTRAST:
        raise HTTPException(422, "blank image")
    border = np.concatenate([gray[0, :], gray[-1, :], gray[1:-1, 0], gray[1:-1, -1]])
    border_level = int(np.sort(border)[(border.size - 1) // 2])
    inverted = border_level > (lo + hi) / 2
    background = 255 - border_level if inverted else border_level
    peak = 255 - lo if inverted else hi
    if peak - background < MIN_CONTRAST:
        raise HTTPException(422, "blank image")
    if w == FRAME and h == FRAME and not inverted and background <= BLACK_LEVEL:
        return gray.copy(), fmt, w, h, inverted, None
    levels = np.arange(256, dtype=np.float64)
    levels = (255 - levels if inverted else levels) - background
    lut = np.minimum(255, np.round(levels * (255 / (peak - background))))
    lut[lut < NOISE_LEVEL] = 0
    ink = lut.astype(np.uint8)[gray]
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    if rows.size == 0:
        raise HTTPException(422, "blank image")
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    bw, bh = x1 - x0, y1 - y0
    longest = max(bw, bh)
    out_w, out_h = max(1, round(bw * BOX / longest)), max(1, round(bh * BOX / longest))
    small = np.asarray(Image.fromarray(ink[y0:y1, x0:x1]).resize((out_w, out_h), Image.BILINEAR), dtype=np.float64)
    # Centre of mass on the frame's centre, to the nearest pixel, ink kept inside.
    total = small.sum()
    ys, xs = np.indices(small.shape)
    dx = min(max(int(round(FRAME / 2 - ((xs + 0.5) * small).sum() / total)), 0), FRAME - out_w)
    dy = min(max(int(round(FRAME / 2 - ((ys + 0.5) * small).sum() / total)), 0), FRAME - out_h)
    frame = np.zeros((FRAME, FRAME), dtype=np.float64)
    frame[dy : dy + out_h, dx : dx + out_w] = small
    pixels = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    return pixels, fmt, w, h, inverted, {"x": x0, "y": y0, "width": bw, "height": bh}


def answer(data: bytes, started: float):
    pixels, fmt, w, h, inverted, bbox = preprocess(data)
    t1 = time.perf_counter()
    with torch.inference_mode():
        probs = MODEL(normalise(torch.from_numpy(pixels).view(1, 1, FRAME, FRAME))).exp()[0]
    digit = int(probs.argmax())
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return {
        "digit": digit,
        "confidence": float(probs[digit]),
        "probabilities": probs.tolist(),
        "model": "super_light",
        "preprocessing": {"source": "image", "format": fmt, "width": w, "height": h, "inverted": bool(inverted), "bbox": bbox},
        "image": base64.b64encode(buf.getvalue()).decode("ascii"),
        "timeMs": (time.perf_counter() - started) * 1000,
        "timings": {"preprocessMs": (t1 - started) * 1000, "inferenceMs": (time.perf_counter() - t1) * 1000},
    }


# Sync endpoints: FastAPI runs them in its thread pool, as the seed projects do.
@app.post("/predict")
def predict(file: UploadFile = File(...)):
    started = time.perf_counter()
    return answer(file.file.read(), started)


@app.post("/predict/raw")
async def predict_raw(request: Request):
    started = time.perf_counter()
    return answer(await request.body(), started)


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


def _serve(host: str, port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, loop="uvloop", http="httptools", log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_serve, args=(args.host, args.port)) for _ in range(args.workers)]
    for w in workers:
        w.start()

    def stop(_signum, _frame):
        for w in workers:
            if w.is_alive():
                os.kill(w.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for w in workers:
        w.join()
    sys.exit(max((w.exitcode or 0) for w in workers))


if __name__ == "__main__":
    main()
