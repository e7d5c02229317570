"""Do two runs' metrics.json hold the same figures? Timing fields, which no two runs share, are left out.

    .venv/bin/python bench/same_metrics.py BEFORE/metrics.json AFTER/metrics.json

Prints every difference (key path, before, after) and exits 1 if there is any; keys only one file has are
listed apart (a newer finetext may add a key without changing any figure).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TIMING = {"train_seconds", "train_runtime_s", "wall_time_s", "train_samples_per_second", "train_tokens_per_second",
          "finetext_version"}


def flat(value, path: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        kept = {key: item for key, item in value.items() if key not in TIMING}
        return {k: v for key, item in kept.items() for k, v in flat(item, f"{path}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in flat(item, f"{path}[{i}]").items()}
    return {path or ".": value}


def main(before_path: str, after_path: str) -> int:
    before, after = (flat(json.loads(Path(p).read_text(encoding="utf-8"))) for p in (before_path, after_path))
    changed = [(k, before[k], after[k]) for k in before.keys() & after.keys() if before[k] != after[k]]
    for key, old, new in sorted(changed):
        print(f"differs {key}: {old} -> {new}")
    for key in sorted(before.keys() - after.keys()):
        print(f"only before {key}: {before[key]}")
    for key in sorted(after.keys() - before.keys()):
        print(f"only after {key}: {after[key]}")
    print(f"{len(before.keys() & after.keys())} figures compared, {len(changed)} differ")
    return 1 if changed else 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
