"""Seconds from `escrow demo` on a new data folder (nothing installed in it) to the first /readyz 200.

Usage: python bench/demo.py [INSTITUTIONS]   (default 690; prints one JSON line last)
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import free_port


def main() -> None:
    institutions = sys.argv[1] if len(sys.argv) > 1 else "690"
    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ESCROW_")}
        env["ESCROW_DATA_DIR"] = folder
        port = free_port()
        log = Path(folder) / "demo.log"
        started = time.monotonic()
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "escrow", "demo", "--institutions", institutions, "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"escrow demo exited early:\n{log.read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.2)
            ready = time.monotonic() - started
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        text = log.read_text()
    summary = re.search(r"(\d+) institutions, (\d+) contracts, ([\d,.]+) yuan collected; seeded in ([\d.]+) s", text)
    assert summary, text[-2000:]
    print(
        json.dumps(
            {
                "bench": "demo",
                "institutions": int(summary.group(1)),
                "contracts": int(summary.group(2)),
                "collected_yuan": float(summary.group(3).replace(",", "")),
                "seeded_s": float(summary.group(4)),
                "serving_s": round(ready, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
