from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

from cmcgns.io.atomic import write_bytes


def write_csv(path: Path, header: list[str], rows: list[list], gz: bool = False) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8")
    write_bytes(path, gzip.compress(data, mtime=0) if gz else data)


def label_cell(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
