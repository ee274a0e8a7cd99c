"""Resident memory of `escrow serve` while six clients with no token post large bodies at once.

Usage: python bench/body_memory.py [MEGABYTES]   (default 50; prints one JSON line last)

Loopback only and bounded in time: each client streams its body for at most TIMEOUT_S and stops when the
server answers or closes the connection. The figure is the server's peak resident set (supervisor and
workers) sampled every 20 ms, beside its resident set when idle.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path

import psutil  # type: ignore[import-untyped]
from _bench import Service, free_port, postgres

CLIENTS = 6
TIMEOUT_S = 60.0
CHUNK = b"x" * 65536
ROUTES = {  # a JSON route and the statement-file route; the body is never valid, nor is it meant to be
    "json": ("/institutions/00000000-0000-0000-0000-000000000000/contracts", "application/json"),
    "statement": ("/statements", "text/plain"),
}


def resident_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def post_large(port: int, path: str, content_type: str, size: int, answers: list[str]) -> None:
    """Announce `size` bytes and send them, stopping when the server answers or hangs up."""
    deadline = time.monotonic() + TIMEOUT_S
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as conn:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {size}\r\n\r\n"
        )
        conn.sendall(head.encode())
        conn.setblocking(False)
        sent, answer = 0, b""
        while sent < size and time.monotonic() < deadline and not answer:
            try:
                sent += conn.send(CHUNK[: min(len(CHUNK), size - sent)])
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:
                break
            with suppress(OSError):  # BlockingIOError: nothing yet
                answer = conn.recv(200)
        conn.settimeout(max(0.1, deadline - time.monotonic()))
        with suppress(OSError):
            answer = answer or conn.recv(200)
    answers.append(answer.split(b"\r\n", 1)[0].decode(errors="replace") or "connection closed")


def main() -> None:
    megabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 50.0
    size = int(megabytes * 1024 * 1024)
    result: dict[str, object] = {"bench": "body_memory", "clients": CLIENTS, "megabytes": megabytes}
    with postgres() as server, tempfile.TemporaryDirectory() as folder:
        url = server.database("escrow_bench_body_memory")
        service = Service(url, workers=1, port=free_port(), log=Path(folder) / "serve.log")
        try:
            service.start()
            pids = service.pids()
            result["idle_rss_mb"] = round(resident_bytes(pids) / 2**20, 1)
            for name, (path, content_type) in ROUTES.items():
                answers: list[str] = []
                clients = [
                    threading.Thread(target=post_large, args=(service.port, path, content_type, size, answers))
                    for _ in range(CLIENTS)
                ]
                peak, started = 0, time.monotonic()
                for c in clients:
                    c.start()
                while any(c.is_alive() for c in clients):
                    peak = max(peak, resident_bytes(pids))
                    time.sleep(0.02)
                result[f"{name}_peak_rss_mb"] = round(peak / 2**20, 1)
                result[f"{name}_seconds"] = round(time.monotonic() - started, 2)
                result[f"{name}_answers"] = sorted(set(answers))
        finally:
            service.stop()
            server.drop("escrow_bench_body_memory")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
