"""Materialisation metadata: row counts, column schemas, Markdown previews, per-store outcomes."""

from collections.abc import Sequence
from typing import Any

import dagster as dg
import pyarrow as pa

from bioimage_pipeline.ingest import ScanBatch

PREVIEW_ROWS = 10
_MAX_CELL = 60


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "_no rows_"
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "\n".join("| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows)
    return head + body


def preview(table: pa.Table | None, columns: Sequence[str] | None = None, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    if table is None or table.num_rows == 0:
        return dg.MetadataValue.md("_no rows_")
    columns = [c for c in (columns or table.column_names) if c in table.column_names]
    return dg.MetadataValue.md(markdown_table(table.select(columns).slice(0, rows).to_pylist(), columns))


def column_schema(schema: pa.Schema) -> dg.MetadataValue:
    return dg.MetadataValue.table_schema(
        dg.TableSchema(columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in schema])
    )


def store_outcomes(batch: ScanBatch) -> dg.MetadataValue:
    rows: list[dict[str, Any]] = []
    for o in batch.outcomes:
        detail = o.error if o.status == "failed" else (f"{len(o.warnings)} warnings" if o.warnings else "")
        conformance = (
            ""
            if o.conformance is None
            else (
                f"{sum(i.severity == 'error' for i in o.conformance)} errors, "
                f"{sum(i.severity == 'warning' for i in o.conformance)} warnings"
            )
        )
        rows.append(
            {
                "dataset_id": o.dataset_id,
                "conformance": conformance,
                "outcome": "ingested" if o.status == "ok" else "failed",
                "format": o.format or "",
                "arrays": o.arrays,
                "chunks": o.chunks,
                "detail": detail,
            }
        )
    rows += [{"dataset_id": d, "outcome": "removed"} for d in batch.removed]
    rows += [{"dataset_id": o.dataset_id, "outcome": "refused", "detail": o.error} for o in batch.refused]
    rows += [{"dataset_id": d, "outcome": "waiting (not selected)"} for d in batch.deferred]
    if batch.unchanged:
        rows.append({"dataset_id": f"{len(batch.unchanged)} stores", "outcome": "unchanged"})
    return dg.MetadataValue.md(
        markdown_table(rows, ["dataset_id", "outcome", "format", "arrays", "chunks", "conformance", "detail"])
    )
