"""Small CSV helpers shared by the preprocessors."""

from __future__ import annotations

import csv
from pathlib import Path

from cmcgns.data.preprocess.base import require_file
from cmcgns.errors import DataError


def read_csv(path: Path, required: list[str]) -> list[dict[str, str]]:
    require_file(path, "index file")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        missing = [c for c in required if c not in fields]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(fields) or 'none'}")
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
