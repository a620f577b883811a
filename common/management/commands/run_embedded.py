"""The embedded mode's processes, started and stopped together (what `make run` serves)."""

import os
import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Serve the embedded mode: gunicorn (one process, threads) for HTTP and a Celery worker "
        "with its beat for the schedule, on kombu's filesystem broker (no server to install). "
        "Stops both when either stops or on Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")
        parser.add_argument("--threads", type=int, default=8, help="HTTP threads (default 8)")

    def handle(self, *args, host: str, port: str, threads: int, **options):
        env = os.environ.copy()
        # The web process and the worker must share one broker: both read it from the
        # environment, so it is set before either starts.
        env.setdefault("CELERY_BROKER_URL", "filesystem://")
        if env["CELERY_BROKER_URL"] == "memory://":
            raise CommandError("CELERY_BROKER_URL=memory:// cannot be shared by two processes")
        python = sys.executable
        commands = {
            "web": [
                python, "-m", "gunicorn", "config.wsgi",
                "--bind", f"{host}:{port}",
                "--workers", "1", "--threads", str(threads),  # one process: per-process state
                "--timeout", "120", "--access-logfile", "-",
            ],
            "worker+beat": [
                python, "-m", "celery", "-A", "config", "worker", "--beat",
                "--pool", "threads", "--concurrency", "2", "--loglevel", "info",
                # The filesystem transport has no broadcast: no mingle, gossip or heartbeats.
                "--without-mingle", "--without-gossip", "--without-heartbeat",
            ],
        }  # fmt: skip
        children = {name: subprocess.Popen(command, env=env) for name, command in commands.items()}  # noqa: S603
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exited = None
        while not stopping and exited is None:
            time.sleep(0.5)
            exited = next((name for name, p in children.items() if p.poll() is not None), None)
        if exited:
            self.stderr.write(f"{exited} stopped (exit {children[exited].returncode}): stopping")
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if exited:
            raise CommandError(f"{exited} stopped unexpectedly", returncode=1)
