"""The microscopy join contract and join coverage of a normalised profile table.

Contract (blocking): every table must be able to name the images its rows were measured on: at least one
of its rows must link to a catalogued image, by its own ``dataset_id`` + ``image_id`` or through file names
or plate/well/site. A table none of whose rows links fails, however complete its key columns look.
``plate_id``, ``well_id`` and ``site_id`` are recommended: missing ones are warnings.
Coverage (warning): the share of rows linked to an image, with a sample of the rows that link nowhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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
    #: Most unlinked rows would link with this ``site_offset`` in the source's options file.
    site_offset_hint: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _non_null(resolution: Resolution, key: str) -> int:
    return resolution.rows - resolution.data.column(key).null_count


def check_contract(name: str, resolution: Resolution, key_sources: dict[str, list[str]]) -> ContractResult:
    """The contract holds when at least one row links to a catalogued image. Keys that name no image
    (a ``dataset_id`` that was never ingested, say) do not count: a row is resolved when it is linked."""
    result = ContractResult(
        name, resolution.rows, passed=True, key_sources=key_sources, warnings=list(resolution.warnings)
    )
    result.resolved_rows = resolution.matched_rows
    for key in REQUIRED_KEYS:
        if _non_null(resolution, key) == 0:
            result.missing_required.append(key)
    for key in RECOMMENDED_KEYS:
        if _non_null(resolution, key) == 0:
            result.missing_recommended.append(key)
    if resolution.rows and resolution.matched_rows:
        return result
    result.passed = False
    if not resolution.has_keys:
        result.problems.append(
            "no column names the images: expected dataset_id + image_id, CellProfiler FileName_*/PathName_* "
            "columns, or plate/well/site metadata (Metadata_Plate, Metadata_Well, Metadata_Site)"
        )
    else:
        given = ", ".join(f"{key} from {'/'.join(cols)}" for key, cols in sorted(key_sources.items())) or "file names"
        result.problems.append(
            f"none of the {resolution.rows} rows links to a catalogued image (keys: {given}); "
            "ingest the stores first, or check that the keys name them"
        )
    return result


def check_coverage(name: str, resolution: Resolution) -> CoverageResult:
    return CoverageResult(
        name,
        resolution.rows,
        resolution.matched_rows,
        round(resolution.coverage, 6),
        resolution.methods,
        resolution.unmatched_sample,
        resolution.site_offset_hint,
    )
