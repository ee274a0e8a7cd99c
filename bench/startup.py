"""Seconds from `escrow serve` to the first /readyz 200: on a new embedded data folder, then reused.

Usage: python bench/startup.py [ROUNDS]   (prints one JSON line last)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_to_ready(data_dir: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCROW_")}
    env["ESCROW_DATA_DIR"] = str(data_dir)
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "escrow", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit("escrow serve exited before it was ready")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    new, reused = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            new.append(time_to_ready(Path(folder)))
            reused.append(time_to_ready(Path(folder)))
    print(
        json.dumps(
            {
                "bench": "startup",
                "rounds": rounds,
                "new_data_folder_s": round(statistics.median(new), 2),
                "reused_data_folder_s": round(statistics.median(reused), 2),
                "new_all_s": [round(x, 2) for x in new],
                "reused_all_s": [round(x, 2) for x in reused],
            }
        )
    )


if __name__ == "__main__":
    main()
