"""``inspect``: a readable summary of a node and everything below it (metadata only, never chunks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.storage import join_key
from bioimage_pipeline.validation.detect import describe
from bioimage_pipeline.validation.nodes import NodeReader, open_node

#: Beyond this many nodes the listing stops (a plate with thousands of fields stays readable).
MAX_NODES = 5000
MAX_DEPTH = 32
_FORMAT_NAMES = {"zarr2": "Zarr v2", "zarr3": "Zarr v3", "n5": "N5"}


@dataclass(frozen=True)
class InspectNode:
    path: str
    kind: str  # "group", "array", or "folder" for a directory without metadata
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    chunks: tuple[int, ...] | None = None
    dimension_names: tuple[str, ...] | None = None
    conventions: tuple[str, ...] = ()
    problem: str | None = None

    @property
    def depth(self) -> int:
        return 0 if not self.path else self.path.count("/") + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path or "/",
            "kind": self.kind,
            "shape": list(self.shape) if self.shape is not None else None,
            "dtype": self.dtype,
            "chunks": list(self.chunks) if self.chunks is not None else None,
            "dimension_names": list(self.dimension_names) if self.dimension_names is not None else None,
            "conventions": list(self.conventions),
            "problem": self.problem,
        }


@dataclass
class InspectReport:
    url: str
    format: str
    root: str
    nodes: list[InspectNode] = field(default_factory=list)
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "format": self.format,
            "root": self.root or "/",
            "truncated": self.truncated,
            "nodes": [n.to_dict() for n in self.nodes],
        }

    def render(self) -> str:
        """A tree of the nodes as an aligned table: node, kind, shape, dtype, chunks, conventions."""
        base = self.nodes[0].depth if self.nodes else 0
        rows = [("node", "kind", "shape", "dtype", "chunks", "conventions")]
        for n in self.nodes:
            name = n.path.rsplit("/", 1)[-1] if n.path and n.path != self.root else (n.path or "/")
            rows.append(
                (
                    "  " * (n.depth - base) + name,
                    n.kind,
                    _dims(n.shape),
                    n.dtype or "",
                    _dims(n.chunks),
                    "; ".join(n.conventions) + (f" [{n.problem}]" if n.problem else ""),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        count = f"{len(self.nodes)} node{'' if len(self.nodes) == 1 else 's'}"
        lines = [f"{self.url}  ({_FORMAT_NAMES.get(self.format, self.format)}, {count})"]
        for k, row in enumerate(rows):
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        if self.truncated:
            lines.append(f"... listing stopped after {MAX_NODES} nodes")
        return "\n".join(lines)


def _dims(values: tuple[int, ...] | None) -> str:
    return "" if values is None else "×".join(str(v) for v in values) or "()"


def inspect_node(url: str | Path) -> InspectReport:
    """Every group and array at and below ``url``, with geometry and the conventions each declares."""
    opened = open_node(url)
    report = InspectReport(str(url), opened.fmt, opened.path)
    _walk(opened.reader, opened.path, 0, report)
    return report


def _walk(reader: NodeReader, path: str, depth: int, report: InspectReport) -> None:
    if len(report.nodes) >= MAX_NODES:
        report.truncated = True
        return
    try:
        node = reader.node(path)
    except StoreError as exc:
        report.nodes.append(InspectNode(path, "unreadable", problem=exc.problem))
        return
    if node is None:
        report.nodes.append(InspectNode(path, "folder", problem="no metadata"))
    elif node.kind == "array":
        problem = "; ".join(node.problems) or None
        report.nodes.append(
            InspectNode(
                path, "array", node.shape, node.dtype, node.chunks, node.dimension_names, tuple(describe(node)), problem
            )
        )
        return
    else:
        report.nodes.append(InspectNode(path, "group", conventions=tuple(describe(node))))
    if depth >= MAX_DEPTH:
        return
    try:
        names = reader.children(path)
    except StoreError:
        return
    for name in names:
        _walk(reader, join_key(path, name), depth + 1, report)
