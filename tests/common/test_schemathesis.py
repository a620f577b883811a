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


@pytest.mark.parametrize("key_name", list(demo.DEMO_KEYS))
def test_the_served_schema_holds_under_schemathesis(served_demo, key_name, tmp_path):
    st = Path(sys.executable).with_name("st")
    done = subprocess.run(  # noqa: S603 - the pinned schemathesis of the dev dependencies
        [
            str(st),
            "run",
            f"{served_demo}/api/schema/",
            "--header",
            f"Authorization: Api-Key {demo.DEMO_KEYS[key_name][0]}",
            "--checks",
            CHECKS,
            "--max-examples",
            "5",
            "--generation-deterministic",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--report-dir",
            str(tmp_path),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its cache (.schemathesis/) stays out of the repository
    )
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-2000:]
