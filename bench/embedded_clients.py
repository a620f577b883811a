"""The embedded mode under many clients: what `make run` serves (manage.py run_embedded:
gunicorn, one process, 8 threads) against Django's runserver on the same SQLite demo, in the
same run. Not part of `make bench` (no PostgreSQL here); run it alone:

    .venv/bin/python bench/embedded_clients.py && .venv/bin/python bench/assemble.py
"""

import concurrent.futures
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, percentile, write_section

CLIENTS, PER_CLIENT = 128, 5
PATH = "/api/v1/availability/near/?sku=TEE-NVY-M&lat=48.8566&lon=2.3522&limit=3"
HEADERS = {"Authorization": "Api-Key osk_demo_web_storefront_key"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one(url: str) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(urllib.request.Request(url, headers=HEADERS), timeout=300) as r:
        r.read()
    return time.monotonic() - started


def load(base: str) -> dict:
    for _ in range(100):  # wait for the server
        try:
            one(base + PATH)
            break
        except OSError:
            time.sleep(0.3)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        latencies = list(pool.map(one, [base + PATH] * (CLIENTS * PER_CLIENT)))
    wall = time.monotonic() - started
    return {
        "wall": wall,
        "rps": len(latencies) / wall,
        "p50": percentile(latencies, 0.5) * 1000,
        "p95": percentile(latencies, 0.95) * 1000,
        "max": max(latencies) * 1000,
    }


def serve(command: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-embedded-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "CELERY_BROKER_FOLDER": str(tmp / "broker"),
        "CELERY_BEAT_SCHEDULE_FILENAME": str(tmp / "beat"),
    }
    env.pop("REDIS_URL", None)
    for step in (["migrate", "--noinput", "-v0"], ["load_demo", "-v0"]):
        subprocess.run([sys.executable, "manage.py", *step], cwd=ROOT, env=env, check=True)  # noqa: S603
    figures = {}
    for name, command in {
        "make run (gunicorn, 1 process × 8 threads)": ["run_embedded", "--port"],
        "manage.py runserver": ["runserver", "--noreload"],
    }.items():
        port = free_port()
        arg = str(port) if command[0] == "run_embedded" else f"127.0.0.1:{port}"
        server = serve([*command, arg], env)
        try:
            figures[name] = load(f"http://127.0.0.1:{port}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    rows = "\n".join(
        f"| {name} | {f['wall']:.1f} | {f['rps']:.0f} | {f['p50']:.0f} | {f['p95']:.0f} | "
        f"{f['max']:.0f} |"
        for name, f in figures.items()
    )
    served, runserver = figures.values()
    write_section(
        "embedded",
        f"""## Embedded mode (`make run`): {CLIENTS} concurrent clients

```
.venv/bin/python bench/embedded_clients.py
```

{CLIENTS} clients each send {PER_CLIENT} "near me" availability requests
(`GET {PATH}`) at once, on the SQLite demo, to what `make run` serves and to Django's
runserver, one after the other in the same run.

| server | wall s | requests/s | p50 ms | p95 ms | max ms |
|---|---|---|---|---|---|
{rows}

The slowest request waits {runserver["max"] / served["max"]:.0f}× less with the threaded server
(runserver's listen backlog made one request wait 54.6 s in the #17 report). The embedded mode
is for trying and demos: SQLite serialises writers, so load belongs on the production set-up.""",
    )


if __name__ == "__main__":
    main()
