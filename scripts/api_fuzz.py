"""Run schemathesis (all checks, object-level authorization between peers) against the real service.

Makes a fresh database on the configured server (or the embedded one), seeds the test district of
tests/world.py, starts `escrow serve` on it, and runs schemathesis as each role. Exit code: schemathesis's.

Usage: python scripts/api_fuzz.py [MAX_EXAMPLES]
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from escrow.db.database import make_engine, make_sessionmaker, normalize_url, upgrade_to_head  # noqa: E402
from escrow.settings import Settings  # noqa: E402
from tests.world import build_world  # noqa: E402

# the main user of each run and the peers that must not see each other's objects
RUNS = ["school_a", "parent1", "regulator", "bank_a"]
PEERS = ["school_a", "school_b", "parent1", "parent2"]


def server_url() -> str:
    settings = Settings()
    if settings.database_url:
        return normalize_url(settings.database_url)
    from escrow.db.embedded import start_embedded

    return start_embedded(settings.data_dir, "postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("escrow serve exited before it was ready")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=1) as r:  # noqa: S310
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("escrow serve did not become ready")


def main() -> int:
    max_examples = sys.argv[1] if len(sys.argv) > 1 else "20"
    server = make_url(server_url())
    name = f"escrow_fuzz_{os.getpid()}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url, pool_size=2)
    proc = None
    try:
        upgrade_to_head(engine)
        with make_sessionmaker(engine).begin() as session:
            world = build_world(session)
        engine.dispose()
        work = Path(tempfile.mkdtemp(prefix="escrow-fuzz-"))
        auth = {
            "auth": [
                {"name": user, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {token}"}]}
                for user, token in world.tokens.items()
            ]
        }
        (work / "auth.json").write_text(json.dumps(auth))
        port = free_port()
        # schemathesis sends bad tokens on purpose (ignored_auth): not an attacker to throttle
        env = {**os.environ, "ESCROW_DATABASE_URL": url, "ESCROW_FAILED_AUTH_LIMIT": "1000000/minute"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "escrow", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, proc)
        worst = 0
        for user in RUNS:
            config = work / f"{user}.toml"
            config.write_text(
                (ROOT / "scripts" / "schemathesis.toml").read_text() + "\n"
                f'[auth.wfc]\npath = "{work / "auth.json"}"\nuser = "{user}"\npeers = {json.dumps(PEERS)}\n'
            )
            print(f"== schemathesis as {user}", flush=True)
            code = subprocess.call(
                [
                    sys.executable,
                    "-m",
                    "schemathesis.cli",
                    "--config-file",
                    str(config),
                    "run",
                    f"{base}/openapi.json",
                    "--checks",
                    "all",
                    "--max-examples",
                    max_examples,
                    "--seed",
                    "1",
                    "--suppress-health-check",
                    "all",
                    "--no-color",
                ]
            )
            worst = max(worst, code)
        return worst
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
