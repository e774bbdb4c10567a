"""Small CSV helpers shared by the preprocessors."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

from cmcgns.data.preprocess.base import require_file
from cmcgns.errors import DataError


def read_csv(path: Path, required: list[str], what: str = "index file") -> list[dict[str, str]]:
    """Rows of a csv (or csv.gz) as dicts with stripped names and values; the required columns
    must be present."""
    require_file(path, what)
    opener = gzip.open if path.suffix == ".gz" else open
    reader: csv.DictReader | None = None
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig") as handle:  # a BOM is not part of a name
            reader = csv.DictReader(handle)
            fields = [f.strip() for f in (reader.fieldnames or [])]
            missing = [c for c in required if c not in fields]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(fields) or 'none'}")
            rows = []
            for lineno, row in enumerate(reader, start=2):
                if None in row.values():  # fewer cells than the header
                    filled = sum(v is not None for v in row.values())
                    raise DataError(
                        f"{path}:{lineno}: {filled} cell(s), the header has {len(fields)}; repair or remove the row"
                    )
                rows.append({(k or "").strip(): (v or "").strip() for k, v in row.items()})
            return rows
    except csv.Error as exc:  # e.g. a field past csv.field_size_limit: usually a quote never closed
        where = f"{path}:{reader.line_num}" if reader is not None else str(path)
        raise DataError(f"{where}: not a valid csv row ({exc}); look for an unclosed quote") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read csv ({exc})") from None


def chexpert_label(raw: str) -> float | None:
    """A CheXpert-labeler cell (CheXpert, MIMIC-CXR): blank -> None (not mentioned), otherwise
    1.0, 0.0 or -1.0 (uncertain); anything else raises ValueError."""
    if raw == "":
        return None
    value = float(raw)
    if value not in (1.0, 0.0, -1.0):
        raise ValueError(raw)
    return value
