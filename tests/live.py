"""Real processes for tests that meet the service as its users do: a database prepared by
`manage.py`, then the web server, worker and beat started as the README starts them, reached
over HTTP on a free loopback port."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings

# What the test process's own environment must not leak into the service it starts.
_OWN = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def service_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OWN}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", PYTHONUNBUFFERED="1", **overrides)
    return env


def manage(*args: str, env: dict[str, str], timeout: int = 180) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode:
        raise AssertionError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def processes(commands: dict[str, list[str]], *, env: dict[str, str], logs: Path):
    """Start each command (argv after the interpreter), yield {name: Popen}, stop them all;
    their output goes to files under `logs`, printed when the test fails so a red run says
    why."""
    logs.mkdir(parents=True, exist_ok=True)
    started = {}
    try:
        for name, argv in commands.items():
            log = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed below
            started[name] = (
                subprocess.Popen(  # noqa: S603
                    [sys.executable, *argv],
                    cwd=settings.BASE_DIR,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
                log,
            )
        yield {name: child for name, (child, _) in started.items()}
    except BaseException:
        for name in started:
            print(f"----- {name} -----\n{(logs / f'{name}.log').read_text()[-6000:]}")
        raise
    finally:
        for child, _ in started.values():
            if child.poll() is None:
                child.terminate()
        for child, log in started.values():
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            log.close()


class Http:
    """A tiny JSON client for a served instance (urllib: what any client of the API does)."""

    def __init__(self, base: str, api_key: str | None = None):
        self.base, self.api_key = base, api_key

    def call(self, method: str, path: str, body=None, key: str | None = None):
        """(status, JSON body)."""
        return self.exchange(method, path, body, key)[:2]

    def exchange(self, method: str, path: str, body=None, key: str | None = None):
        """(status, JSON body, response headers)."""
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Api-Key {self.api_key}"
        if key:
            headers["Idempotency-Key"] = key
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - loopback URL built by the test
            self.base + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"null"), response.headers
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null"), error.headers

    def get(self, path: str):
        return self.call("GET", path)

    def post(self, path: str, body=None, key: str = "k"):
        return self.call("POST", path, body or {}, key=key)


def wait_for(probe, *, timeout: float, every: float = 0.5, what: str = "condition"):
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
        except (OSError, urllib.error.URLError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def _as_postgres_user() -> list[str]:
    # initdb refuses to run as root: run the cluster as the postgres (or nobody) user.
    if os.geteuid() != 0:
        return []
    import pwd

    try:
        pwd.getpwnam("postgres")
        return ["runuser", "-u", "postgres", "--"]
    except KeyError:
        return ["runuser", "-u", "nobody", "--"]


class PostgresCluster:
    """A PostgreSQL cluster of the test's own (initdb/pg_ctl from the machine's PostgreSQL),
    to stop and restart under requests without touching the suite's own database."""

    def __init__(self):
        import glob
        import shutil
        import tempfile

        found = (
            shutil.which("pg_ctl")
            or (sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or [""])[-1]
        )
        if not found:
            raise AssertionError("PostgreSQL binaries not found (make test installs them)")
        self.bin = Path(found).resolve().parent
        self.root = Path(tempfile.mkdtemp(prefix="omnistock-pg-", dir="/tmp"))
        self.port = free_port()
        self.run_as = _as_postgres_user()
        if self.run_as:
            shutil.chown(self.root, user=self.run_as[2])
        self._run("initdb", "-D", str(self.root / "data"), "-U", "omnistock", "-A", "trust",
                  "--no-locale", "-E", "UTF8")  # fmt: skip
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "omnistock", "shop")
        self.url = f"postgres://omnistock@127.0.0.1:{self.port}/shop"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.run_as, str(self.bin / tool), *args], check=True,  # noqa: S603
                       capture_output=True, timeout=120)  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "log"), "-w",
                  "start", "-o", options)  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        import shutil

        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A Redis of the test's own, to stop and start again on the same port."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",  # noqa: S607
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.answers, timeout=10, what="redis")

    def answers(self) -> bool:
        import redis

        try:
            return redis.Redis(port=self.port, socket_timeout=1).ping()
        except redis.exceptions.ConnectionError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@contextlib.contextmanager
def embedded_demo(tmp: Path, **env_overrides: str):
    """What `make run` serves — the demo data on SQLite, gunicorn, a worker and its beat —
    on a free port, for as long as the block runs. Yields the base URL."""
    env = service_env(
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        CELERY_BROKER_FOLDER=str(tmp / "broker"),
        CELERY_BEAT_SCHEDULE_FILENAME=str(tmp / "beat-schedule"),
        **env_overrides,
    )
    manage("migrate", "--noinput", "-v0", env=env)
    manage("load_demo", "-v0", env=env)
    port = free_port()
    launcher = ["manage.py", "run_embedded", "--port", str(port)]
    with processes({"run_embedded": launcher}, env=env, logs=tmp / "logs"):
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: Http(base).get("/healthz/node")[0] == 200, timeout=60, what="server")
        yield base


@contextlib.contextmanager
def production_stack(tmp: Path, *, nodes: int = 1, **env_overrides: str):
    """The README's production processes on servers of the test's own: PostgreSQL and Redis,
    `nodes` gunicorn app nodes (2 workers × 4 threads each, one database), a Celery worker and
    beat; the demo data loaded. Yields (base URLs, cluster, redis server, mail folder)."""
    cluster, redis_server = PostgresCluster(), RedisServer()
    env = service_env(
        DATABASE_URL=cluster.url,
        REDIS_URL=redis_server.url,
        DEBUG="0",
        SECRET_KEY="test-only-secret-key",
        ALLOWED_HOSTS="127.0.0.1",
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(tmp / "mail"),
        CELERY_BEAT_SCHEDULE_FILENAME=str(tmp / "beat-schedule"),
        SCHEDULER_TICK_SECONDS="1",
        TASKS_SWEEP_GRACE_SECONDS="2",
        **env_overrides,
    )
    try:
        manage("migrate", "--noinput", "-v0", env=env)
        manage("load_demo", "-v0", env=env)
        ports = [free_port() for _ in range(nodes)]
        commands = {
            f"gunicorn-{n}": ["-m", "gunicorn", "config.wsgi", "--workers", "2", "--threads",
                              "4", "--bind", f"127.0.0.1:{port}"]
            for n, port in enumerate(ports)
        }  # fmt: skip
        commands["worker"] = ["-m", "celery", "-A", "config", "worker", "--loglevel=info",
                              "--pool=threads", "--concurrency=4"]  # fmt: skip
        commands["beat"] = ["-m", "celery", "-A", "config", "beat", "--loglevel=info"]
        with processes(commands, env=env, logs=tmp / "logs"):
            bases = [f"http://127.0.0.1:{port}" for port in ports]
            for base in bases:
                wait_for(lambda b=base: Http(b).get("/healthz")[0] == 200, timeout=60,
                         what=f"{base}/healthz")  # fmt: skip
            yield bases, cluster, redis_server, tmp / "mail"
    finally:
        cluster.destroy()
        if redis_server.process.poll() is None:
            redis_server.stop()
