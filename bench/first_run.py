"""Seconds from a fresh clone to the first page served, as a newcomer meets it: `git clone`, then
`make run` (a new venv, then `escrow demo` on a new data folder), until /readyz answers and /docs is served.

Usage: python bench/first_run.py [--no-pip-cache] [--institutions N]   (prints one JSON line last)

pip's cache is used unless --no-pip-cache (a newcomer's machine has none: that run downloads every wheel).
Phases: clone_s, install_s (make's venv and `pip install .`), seed_s (the demo's own figure, from its
database made anew to the district seeded), to_first_page_s (everything, from before the clone).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import free_port

HERE = Path(__file__).resolve().parent
GIT, MAKE = shutil.which("git") or "git", shutil.which("make") or "make"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-pip-cache", action="store_true", help="install as on a machine with no pip cache")
    parser.add_argument("--institutions", type=int, default=None, help="passed to escrow demo; default its own")
    args = parser.parse_args()
    repo = subprocess.run(
        [GIT, "-C", str(HERE), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as folder:
        clone, data = Path(folder) / "escrow", Path(folder) / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ESCROW_", "VIRTUAL_ENV"))}
        env["ESCROW_DATA_DIR"] = str(data)
        if args.no_pip_cache:
            env["PIP_NO_CACHE_DIR"] = "1"
        started = time.monotonic()
        subprocess.run([GIT, "clone", "--quiet", repo, str(clone)], check=True)
        cloned = time.monotonic()
        subprocess.run([MAKE, "-s", ".venv/bin/escrow"], cwd=clone, env=env, check=True)
        installed = time.monotonic()
        demo_args = f"--port {free_port()}" + (f" --institutions {args.institutions}" if args.institutions else "")
        port = int(demo_args.split()[1])
        log = Path(folder) / "run.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [MAKE, "-s", "run", f"ARGS={demo_args}"],
                cwd=clone,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            served = first_page(proc, port, log)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)  # make and the escrow demo it started
            proc.wait(timeout=60)
        text = log.read_text()
        venv_mb = sum(f.stat().st_size for f in (clone / ".venv").rglob("*") if f.is_file()) / 1e6
    summary = re.search(r"(\d+) institutions, (\d+) contracts, ([\d,.]+) yuan collected; seeded in ([\d.]+) s", text)
    assert summary, text[-2000:]
    print(
        json.dumps(
            {
                "bench": "first_run",
                "pip_cache": not args.no_pip_cache,
                "institutions": int(summary.group(1)),
                "clone_s": round(cloned - started, 1),
                "install_s": round(installed - cloned, 1),
                "seed_s": float(summary.group(4)),
                "to_first_page_s": round(served - started, 1),
                "venv_mb": round(venv_mb),
            }
        )
    )


def first_page(proc: subprocess.Popen[bytes], port: int, log: Path) -> float:
    """The instant /readyz first answered 200 and /docs was then served."""
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"make run exited early:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as ready:
                if ready.status == 200:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=5) as docs:
                        assert docs.status == 200
                    return time.monotonic()
        except OSError:
            time.sleep(0.2)


if __name__ == "__main__":
    main()
