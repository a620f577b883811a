"""Fold bench/results/*.md into docs/benchmarks.md: each result replaces the section of the same
`## ` heading (or is added at the end), every other section is kept as it was measured. So
docs/benchmarks.md is the one record of the figures; bench/results/ is a scratch folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, machine

DOC = ROOT / "docs" / "benchmarks.md"
HEADER = f"""# Benchmarks

Reproduce with `make bench` (every script), `BENCH=stock make bench` (one script) or
`bash bench/run.sh --quick` (short smoke runs); the ledger before/after a change with
`BASELINE=<rev> bash bench/compare.sh`. Each script runs against a throwaway PostgreSQL
cluster and Redis started by the script (PostgreSQL defaults, durable commits, except
`shared_buffers=512MB`), on:

**Machine:** {machine()}
"""


def sections_of(text: str) -> dict[str, str]:
    """`## ` heading → the section's text (heading included), in document order."""
    found: dict[str, str] = {}
    for chunk in ("\n" + text).split("\n## ")[1:]:
        heading = chunk.split("\n", 1)[0].strip()
        found[heading] = "## " + chunk.strip()
    return found


kept = sections_of(DOC.read_text()) if DOC.exists() else {}
fresh = {}
for result in sorted(RESULTS.glob("*.md")):
    fresh.update(sections_of(result.read_text()))
merged = {**kept, **fresh}  # a fresh section keeps its old place, new ones go last
DOC.write_text(HEADER + "\n" + "\n\n".join(merged.values()) + "\n")
print(f"docs/benchmarks.md: {len(fresh)} section(s) refreshed, {len(merged)} in all.")
