"""Schemathesis against the served schema of `make run`, with each demo key (a storefront, a
till, the back office): every operation, the examples, coverage, fuzzing and stateful phases,
a small deterministic budget. The bar: no server error, no answer outside its declared schema,
no undeclared status code."""

import subprocess
import sys
from pathlib import Path

import pytest

from demo import data as demo
from tests.live import embedded_demo

pytestmark = pytest.mark.embedded
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"


@pytest.fixture(scope="module")
def served_demo(tmp_path_factory):
    with embedded_demo(tmp_path_factory.mktemp("schemathesis")) as base:
        yield base


@pytest.fixture(scope="module")
def runs(served_demo, tmp_path_factory):
    """One schemathesis run per demo key, all three at once against the one server (the
    suite's biggest cost: side by side they take the time of the slowest, not the sum)."""
    st = Path(sys.executable).with_name("st")
    started = {}
    for key_name, (key, *_rest) in demo.DEMO_KEYS.items():
        work = tmp_path_factory.mktemp(f"st-{key_name}")
        started[key_name] = subprocess.Popen(  # noqa: S603 - the pinned schemathesis (dev deps)
            [
                str(st),
                "run",
                f"{served_demo}/api/schema/",
                "--header",
                f"Authorization: Api-Key {key}",
                "--checks",
                CHECKS,
                "--max-examples",
                "5",
                "--generation-deterministic",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--report-dir",
                str(work),
            ],  # fmt: skip
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=work,  # its cache (.schemathesis/) stays out of the repository
        )
    results = {}
    for key_name, run in started.items():
        try:
            out, err = run.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            run.kill()
            out, err = run.communicate()
            err += "\n(timed out after 900 s)"
        results[key_name] = (run.returncode, out, err)
    return results


@pytest.mark.parametrize("key_name", list(demo.DEMO_KEYS))
def test_the_served_schema_holds_under_schemathesis(runs, key_name):
    returncode, out, err = runs[key_name]
    assert returncode == 0, out[-12000:] + err[-2000:]
