"""Rebuild docs/benchmarks.md from bench/results/*.md and the machine's description."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, machine

sections = sorted(RESULTS.glob("*.md"))
header = f"""# Benchmarks

Reproduce with `make bench` (every script), `BENCH=stock make bench` (one script) or
`bash bench/run.sh --quick` (short smoke runs). Each script runs against a throwaway PostgreSQL
cluster and Redis started by `bench/run.sh` (PostgreSQL defaults, durable commits, except
`shared_buffers=512MB`), on:

**Machine:** {machine()}

"""
body = "\n\n".join(section.read_text().strip() for section in sections)
analysis = ROOT / "bench" / "analysis.md"
if analysis.exists():
    body += "\n\n" + analysis.read_text().strip()
(ROOT / "docs" / "benchmarks.md").write_text(header + body + "\n")
print(f"docs/benchmarks.md rebuilt from {len(sections)} section(s).")
