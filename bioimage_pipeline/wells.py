"""Well names: ``B03`` from a row and a column, whatever form a layout or a profile table writes them in.

Its own module, free of the format readers, so that profile normalisation and ``status`` do not import them.
"""

from __future__ import annotations

import re
from typing import Any

_WELL_RE = re.compile(r"^\s*([A-Za-z]{1,2})\s*[-_ ]?\s*0*(\d{1,3})\s*$")


def row_label(row: str | int) -> str:
    """Row letters from a name or a 1-based row number (1 → A, 27 → AA)."""
    if isinstance(row, int) or (isinstance(row, str) and row.isdigit()):
        n, letters = int(row), ""
        while n > 0:
            n, rem = divmod(n - 1, 26)
            letters = chr(65 + rem) + letters
        return letters
    return str(row).strip().upper()


def well_id(row: str | int, column: str | int) -> str:
    """Canonical well name: row letters and a column number of at least two digits (``B03``)."""
    col = str(column).strip()
    col_text = f"{int(col):02d}" if col.isdigit() else col
    return f"{row_label(row)}{col_text}"


def normalize_well(value: Any) -> str | None:
    """``B3``, ``b03``, ``B-03`` → ``B03``; anything else is returned stripped (never guessed)."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or text.lower() in {"nan", "none", "null"}:
        return None
    m = _WELL_RE.match(text)
    return well_id(m.group(1), m.group(2)) if m else text
