"""How many rows a streamed profile batch holds: wide enough tables move a few thousand rows at a time, so a
table of any length costs one batch of memory."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

#: Bytes of one batch when a table is streamed: a 4,000-column float table moves ~2,000 rows at a time.
BATCH_BYTES = 64 * 1024 * 1024
#: Fewest rows per batch, however wide the table.
MIN_BATCH_ROWS = 256


def batch_rows(types: pa.Schema | Iterable[pa.DataType], budget: int | None = None) -> int:
    """Rows per batch that keep a batch of these column types near ``budget`` bytes (text counted as 32
    bytes a value). The defaults are read at call time, so a test can shrink them."""
    fields = [f.type for f in types] if isinstance(types, pa.Schema) else list(types)
    width = sum(max(t.bit_width // 8, 1) if pa.types.is_primitive(t) else 32 for t in fields)
    return max(MIN_BATCH_ROWS, (BATCH_BYTES if budget is None else budget) // max(width, 1))
