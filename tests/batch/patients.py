"""Generated patient files for the engine tests: the data set's rows repeated under new IDs."""

from __future__ import annotations

import csv
from pathlib import Path

FEATURE_COLUMNS = ["PRG", "PL", "PR", "SK", "TS", "M11", "BD2", "Age", "Insurance"]


def write_patients(
    path: Path,
    sources: list[Path],
    n: int,
    *,
    changes: dict[int, dict[str, str]] | None = None,
) -> Path:
    """``n`` patients (IDs G0000001...) cycling through the rows of ``sources``, with
    ``changes[row] = {column: value}`` applied (rows 1-based, the header not counted)."""
    rows: list[list[str]] = []
    for src in sources:
        reader = csv.DictReader(src.read_text(encoding="utf-8-sig").splitlines())
        rows.extend([r[c] for c in FEATURE_COLUMNS] for r in reader)
    changes = changes or {}
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["ID", *FEATURE_COLUMNS])
        for i in range(1, n + 1):
            values = [f"G{i:07d}", *rows[i % len(rows)]]
            row = dict(zip(["ID", *FEATURE_COLUMNS], values, strict=True))
            row.update(changes.get(i, {}))
            out.writerow(row.values())
    return path
