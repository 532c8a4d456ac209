"""The line protocol of the benchmarks' long-lived PyTorch peers (bench/runner.ts PythonWorker).

One JSON request per line on stdin, each answered with one JSON line on stdout:
{"ok": true, "result": ...} or {"ok": false, "error": "...", "traceback": "..."}.
{"cmd": "quit"} (or the end of stdin) ends the loop. Anything else written to stdout
(warnings, prints) goes to stderr, so that it cannot corrupt the protocol.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any, Callable, Dict


def serve(handlers: Dict[str, Callable[[Dict[str, Any]], Any]]) -> None:
    out = sys.stdout
    sys.stdout = sys.stderr
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            cmd = req.get("cmd")
            if cmd == "quit":
                break
            handler = handlers.get(cmd)
            if handler is None:
                raise ValueError(f"unknown command {cmd!r}")
            reply = {"ok": True, "result": handler(req)}
        except Exception as err:  # reported to the benchmark, which fails the run
            reply = {"ok": False, "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
        out.write(json.dumps(reply) + "\n")
        out.flush()
