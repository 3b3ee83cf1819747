"""The microscopy join contract and join coverage of a normalised profile table.

Contract (blocking): every table must be able to name the images its rows were measured on, that is
``dataset_id`` and ``image_id`` must be given or resolvable for its rows. A table that resolves no row at all
fails. ``plate_id``, ``well_id`` and ``site_id`` are recommended: missing ones are warnings.
Coverage (warning): the share of rows linked to an image, with a sample of the rows that link nowhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow.compute as pc

from bioimage_pipeline.profiles.normalize import RECOMMENDED_KEYS, REQUIRED_KEYS
from bioimage_pipeline.profiles.resolve import Resolution


@dataclass
class ContractResult:
    table: str
    rows: int
    passed: bool
    missing_required: list[str] = field(default_factory=list)
    missing_recommended: list[str] = field(default_factory=list)
    key_sources: dict[str, list[str]] = field(default_factory=dict)
    resolved_rows: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CoverageResult:
    table: str
    rows: int
    matched_rows: int
    coverage: float
    methods: dict[str, int]
    unmatched_sample: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _non_null(resolution: Resolution, key: str) -> int:
    return resolution.rows - resolution.data.column(key).null_count


def check_contract(name: str, resolution: Resolution, key_sources: dict[str, list[str]]) -> ContractResult:
    result = ContractResult(
        name, resolution.rows, passed=True, key_sources=key_sources, warnings=list(resolution.warnings)
    )
    resolved = resolution.data.filter(
        pc.and_(pc.is_valid(resolution.data.column("dataset_id")), pc.is_valid(resolution.data.column("image_id")))
    )
    result.resolved_rows = resolved.num_rows
    for key in REQUIRED_KEYS:
        if _non_null(resolution, key) == 0:
            result.missing_required.append(key)
    if result.missing_required:
        result.passed = False
        if not resolution.has_keys:
            result.problems.append(
                "no column names the images: expected dataset_id + image_id, CellProfiler FileName_*/PathName_* "
                "columns, or plate/well/site metadata (Metadata_Plate, Metadata_Well, Metadata_Site)"
            )
        else:
            result.problems.append(
                f"{', '.join(result.missing_required)} could not be resolved for any of the {resolution.rows} "
                "rows: their keys match no catalogued image"
            )
    for key in RECOMMENDED_KEYS:
        if _non_null(resolution, key) == 0:
            result.missing_recommended.append(key)
    return result


def check_coverage(name: str, resolution: Resolution) -> CoverageResult:
    return CoverageResult(
        name,
        resolution.rows,
        resolution.matched_rows,
        round(resolution.coverage, 6),
        resolution.methods,
        resolution.unmatched_sample,
    )
