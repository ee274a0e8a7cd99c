"""Run every bench script and print the JSON line each one ends with.

Usage: python bench/run_all.py [--size S] [--only NAME ...]

S scales each script's size argument from its default (1: as registered below; 0.1: a quick run).
Scripts in bench/ that are not registered run with their own defaults after the registered ones;
this file and helper modules (names starting with _) are not run. A script that fails or prints no
JSON gets a line {"bench": ..., "error": ...}; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (script, default of its size argument or None if it takes none, other arguments); extend freely
REGISTRY: list[tuple[str, int | None, list[str]]] = [
    ("startup.py", 3, []),  # rounds
    ("demo.py", 690, []),  # institutions
    ("http_collections.py", 10_000, []),  # requests in the sustained phase
    ("http_collections.py", 10_000, ["--hot"]),
    ("faults.py", 15, []),  # rounds
    ("regulator_day.py", 10_000_000, []),  # postings over 3000 institutions
    ("bulk_import.py", 20_000, []),  # collections, in batches of 100
]
TIMEOUT_S = 3600


def plan(size: float) -> list[tuple[str, list[str]]]:
    runs = [
        (script, ([str(max(1, round(default * size)))] if default is not None else []) + extra)
        for script, default, extra in REGISTRY
    ]
    registered = {script for script, _, _ in REGISTRY}
    others = sorted(
        p.name
        for p in HERE.glob("*.py")
        if p.name not in registered and p.name != Path(__file__).name and not p.name.startswith("_")
    )
    return runs + [(name, []) for name in others]


def last_json(output: str) -> dict[str, object] | None:
    for line in reversed(output.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=1.0, help="scale of every size argument (default 1)")
    parser.add_argument("--only", nargs="*", default=[], help="run only these scripts (e.g. faults.py)")
    args = parser.parse_args()
    failed = 0
    for script, script_args in plan(args.size):
        if args.only and script not in args.only:
            continue
        command = [sys.executable, str(HERE / script), *script_args]
        print(f"== {' '.join([script, *script_args])}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
            found = last_json(done.stdout)
            if done.returncode != 0 or found is None:
                failed += 1
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                error: dict[str, object] = {"bench": script, "args": script_args, "error": f"exit {done.returncode}"}
                found = {**found, **error} if found else {**error, "tail": tail}
        except subprocess.TimeoutExpired:
            failed += 1
            found = {"bench": script, "args": script_args, "error": f"timed out after {TIMEOUT_S} s"}
        print(f"   {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        print(json.dumps(found), flush=True)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
