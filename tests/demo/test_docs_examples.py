"""Every example in the README and docs/ runs as written against what `make run` serves: the
demo data, the demo keys, the embedded server. The `sh` blocks that call curl run in bash (in
document order, each file's blocks in one server), any HTTP error failing the block; a JSON block
announced by `<!-- example: POST /api/v1/… as <demo key> -->` is posted as it stands."""

import json
import re
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from demo import data as demo
from tests.live import Http, embedded_demo

pytestmark = pytest.mark.embedded

DOCS = [Path(settings.BASE_DIR) / "README.md", *sorted((settings.BASE_DIR / "docs").glob("*.md"))]
SH_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
JSON_EXAMPLE = re.compile(
    r"<!-- example: (?P<method>POST) (?P<path>/api/\S+) as (?P<key>[\w-]+) -->\s*```json\n"
    r"(?P<body>.*?)```",
    re.S,
)
# curl as the examples call it, but an HTTP error (4xx/5xx) makes it, and the block, fail.
CURL_FAILS_ON_HTTP_ERRORS = 'curl() { command curl --fail-with-body "$@"; echo; }\n'


def _examples():
    for path in DOCS:
        text = path.read_text()
        for block in SH_BLOCK.findall(text):
            if "curl" in block:
                yield path.name, "sh", block
        for match in JSON_EXAMPLE.finditer(text):
            yield path.name, "json", match


@pytest.fixture(scope="module")
def served_demo(tmp_path_factory):
    with embedded_demo(tmp_path_factory.mktemp("docs-examples")) as base:
        yield base


def test_the_docs_have_examples_to_run():
    kinds = {(name, kind) for name, kind, _ in _examples()}
    assert ("README.md", "sh") in kinds and ("orders.md", "json") in kinds


def test_every_example_in_the_readme_and_docs_runs_against_the_demo(served_demo):
    failures = []
    for name, kind, example in _examples():
        if kind == "sh":
            script = CURL_FAILS_ON_HTTP_ERRORS + example.replace(
                "http://127.0.0.1:8000", served_demo
            )
            done = subprocess.run(  # noqa: S603 - the docs' own examples, on loopback
                ["/bin/bash", "-euo", "pipefail", "-c", script],  # noqa: S607
                capture_output=True,
                text=True,
                timeout=60,
            )
            if done.returncode:
                failures.append(f"{name}:\n{example}\n→ {done.stdout[-800:]}{done.stderr[-400:]}")
        else:
            raw_key = demo.DEMO_KEYS[example["key"]][0]
            body = json.loads(example["body"])
            status, answer = Http(served_demo, raw_key).post(
                example["path"], body, key=f"docs-{name}-{example.start()}"
            )
            if status >= 400:
                failures.append(f"{name}: {example['path']} → {status} {answer}")
    assert not failures, "\n\n".join(failures)
