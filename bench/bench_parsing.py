"""The strict JSON parser (common.parsing) against json.loads, on a POS batch of 500 sale
events, in the same run: what the checks (numbers, depth, NUL, lone surrogates) cost per body.

Usage: python bench/bench_parsing.py [--quick]   (bench/run.sh runs it with the others)
"""

import json
import sys
import time

from _common import django_setup, write_section


def per_call_ms(parse, raw: bytes, rounds: int) -> float:
    best = float("inf")
    for _ in range(5):  # best of 5: the least disturbed by the shared machine
        started = time.perf_counter()
        for _ in range(rounds):
            parse(raw)
        best = min(best, (time.perf_counter() - started) / rounds * 1000)
    return best


def main() -> None:
    django_setup()
    from common.parsing import strict_json_loads

    event = {
        "event_id": "PARIS-RIVOLI-T1-000123", "type": "sale",
        "occurred_at": "2026-11-22T15:04:05+01:00", "store": "PARIS-RIVOLI", "till": "T1",
        "data": {"receipt": "R-000123", "currency": "EUR",
                 "lines": [{"sku": "TEE-NVY-M", "quantity": 1, "unit_price": "29.90"}] * 3,
                 "tenders": [{"kind": "card", "amount": "89.70"}]},
    }  # fmt: skip
    raw = json.dumps({"events": [event] * 500}).encode()
    rounds = 5 if "--quick" in sys.argv else 30
    plain = per_call_ms(json.loads, raw, rounds)
    strict = per_call_ms(strict_json_loads, raw, rounds)
    write_section(
        "parsing",
        f"""## Strict JSON parsing (a POS batch of 500 events)

```
python bench/bench_parsing.py
```

A {len(raw) // 1024} KiB batch body, best of 5 × {rounds} parses, same run:

| parser | ms per body | per event |
|---|---|---|
| json.loads | {plain:.2f} | {plain / 500 * 1000:.1f} µs |
| common.parsing.strict_json_loads | {strict:.2f} | {strict / 500 * 1000:.1f} µs |

Ratio {strict / plain:.2f}: the checks add {strict - plain:.2f} ms to a 500-event batch, whose
events are applied at about 1,000 a second (POS section) — well under 1 % of the batch's time.""",
    )


if __name__ == "__main__":
    main()
