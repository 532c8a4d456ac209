#!/usr/bin/env python3
"""Check ONNX files with the reference checker (Debian's python3-onnx).

    /usr/bin/python3 python/check_onnx.py model.onnx [more.onnx ...]

For each file: onnx.checker.check_model(full_check=True), then strict shape inference
with type checks. Prints one JSON object per file, one per line:

    {"file": ..., "ok": true, "ir_version": 8, "opset": 17, "onnx": "1.12.0",
     "inputs": {"input": ["batch", 1, 28, 28]}, "outputs": {"log_probs": ["batch", 10]},
     "ops": {"Conv": 7, ...}, "metadata": {...}}

or {"file": ..., "ok": false, "error": "..."}; the exit status is 1 if any file failed.
"""

from __future__ import annotations

import json
import sys
from collections import Counter

import onnx


def dims(value_info: onnx.ValueInfoProto) -> list:
    shape = value_info.type.tensor_type.shape
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in shape.dim]


def check(path: str) -> dict:
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as e:  # the checker's own exception types differ across versions
        return {"file": path, "ok": False, "error": f"{type(e).__name__}: {e}"}
    return {
        "file": path,
        "ok": True,
        "onnx": onnx.__version__,
        "ir_version": model.ir_version,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import}.get("ai.onnx"),
        "inputs": {i.name: dims(i) for i in inferred.graph.input},
        "outputs": {o.name: dims(o) for o in inferred.graph.output},
        "ops": dict(Counter(n.op_type for n in model.graph.node)),
        "initializers": len(model.graph.initializer),
        "metadata": {p.key: p.value for p in model.metadata_props},
    }


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    failed = False
    for path in sys.argv[1:]:
        result = check(path)
        failed |= not result["ok"]
        print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
