"""``bioimage-pipeline``: the library's operations from the shell.

Exit codes: 0 success, 1 validation failed (a contract, a hierarchy check, a warehouse), 2 usage or input
error. Errors are one line on stderr; ``BIOIMAGE_DEBUG=1`` adds the traceback of any error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:  # the CLI imports lazily so that `--help` stays instant
    import pyarrow as pa
    from pyiceberg.catalog import Catalog

    from bioimage_pipeline.config import PipelineConfig
    from bioimage_pipeline.discovery import StoreEntry
    from bioimage_pipeline.model import StoreScan
    from bioimage_pipeline.profiles.pipeline import PreparedProfiles
    from bioimage_pipeline.profiles.sources import ProfileSource

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
PROG = "bioimage-pipeline"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # DuckDB's sums are HUGEINT and its exact decimals DECIMAL: both are numbers in JSON.
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=_json_default, ensure_ascii=False))


def _config() -> PipelineConfig:
    from bioimage_pipeline.config import PipelineConfig

    return PipelineConfig.from_env()


def _catalog(config: PipelineConfig) -> Catalog:
    from bioimage_pipeline.catalog import load_catalog

    return load_catalog(config)


# --- store commands ----------------------------------------------------------------------------------


def _scan(path: str, dataset_id: str | None) -> StoreScan:
    from bioimage_pipeline.formats import scan_store

    return scan_store(Path(path), dataset_id)


def cmd_scan(args: argparse.Namespace) -> int:
    from bioimage_pipeline.discovery import fingerprint_store
    from bioimage_pipeline.tables import image_asset_rows

    scan = _scan(args.path, args.dataset_id)
    if args.json:
        fingerprint = fingerprint_store(Path(scan.uri))[0]
        rows = image_asset_rows(scan, fingerprint, datetime.now(UTC))
        _print_json(
            {
                "dataset_id": scan.dataset_id,
                "uri": scan.uri,
                "format": scan.format,
                "image_assets": rows,
                "warnings": scan.warnings,
            }
        )
        return EXIT_OK
    print(
        f"{scan.dataset_id}: {scan.format}, {len(scan.image_ids)} images, {len(scan.arrays)} arrays, "
        f"{scan.chunk_count:,} chunks"
    )
    for a in scan.arrays:
        chunks = "x".join(map(str, a.chunk_shape)) if a.chunk_shape else "-"
        print(
            f"  {a.array_path:<24} level {a.level}  {'x'.join(map(str, a.shape)):<20} {a.dtype:<8} "
            f"chunks {chunks:<16} axes {''.join(a.axes or []) or '-'}"
        )
    for w in scan.warnings:
        print(f"  warning: {w}")
    return EXIT_OK


def cmd_summarize(args: argparse.Namespace) -> int:
    from bioimage_pipeline.summary import summarize_scan

    summary = summarize_scan(_scan(args.path, args.dataset_id))
    _print_json(summary.to_dict()) if args.json else print(summary.render())
    return EXIT_OK


def _expand_paths(paths: Sequence[str]) -> tuple[list[StoreEntry], list[Path]]:
    """(stores, folders). Stores named directly keep their file name as dataset_id; a folder that is not
    itself a store stands for every store under it, identified by their paths relative to that folder."""
    from bioimage_pipeline.discovery import StoreEntry, dataset_id_for, iter_store_paths
    from bioimage_pipeline.errors import UsageError
    from bioimage_pipeline.formats import detect_format

    out: list[StoreEntry] = []
    folders: list[Path] = []
    for raw in paths:
        path = Path(raw).absolute()
        if detect_format(path) is not None or not path.is_dir():
            out.append(StoreEntry(path))
            continue
        found = [StoreEntry(p, dataset_id_for(p, path), listed=True) for p, _ in iter_store_paths(path)]
        if not found:
            raise UsageError(f"{path}: no image stores found in this folder")
        out.extend(found)
        folders.append(path)
    return out, folders


def _ingest(
    paths: Sequence[StoreEntry],
    replace: bool,
    chunks_only: bool,
    skip_chunks: bool,
    force: bool,
    prune: Sequence[Path] = (),
) -> dict[str, Any]:
    from bioimage_pipeline import ingest

    config = _config()
    catalog = _catalog(config)
    # Lazy: scanned a group at a time while writing, so memory does not grow with the number of stores.
    batch = ingest.scan_paths(config, catalog, paths, replace=replace, force=force, prune=prune, lazy=not chunks_only)
    if chunks_only:
        writes = [ingest.write_chunk_index(catalog, config.namespace, batch)]
    else:
        writes = ingest.write_all(catalog, config.namespace, batch, chunks=not skip_chunks)
    return {
        "catalog": config.catalog_name,
        "namespace": config.namespace,
        "stores": [
            {
                "dataset_id": o.dataset_id,
                "uri": o.uri,
                "status": o.status,
                "format": o.format,
                "arrays": o.arrays,
                "chunks": o.chunks,
                "error": o.error,
                "warnings": o.warnings,
            }
            for o in [*batch.outcomes, *batch.refused, *batch.still_failed]
        ],
        "unchanged": batch.unchanged,
        "removed": batch.removed,
        "tables": {w.table: {"rows_written": w.rows_written, "committed": w.committed} for w in writes},
        "failed": len(batch.failed) + len(batch.refused) + len(batch.still_failed),
    }


def _report_ingest(result: dict[str, Any], as_json: bool) -> int:
    """Exit 0 when every store went in, 1 when some failed (the others are committed)."""
    if as_json:
        _print_json(result)
    else:
        for s in result["stores"]:
            if s["status"] == "ok":
                print(f"{s['dataset_id']}: {s['format']}, {s['arrays']} arrays, {s['chunks']:,} chunks")
                for w in s["warnings"]:
                    print(f"  warning: {w}")
            else:
                print(f"{s['dataset_id']}: FAILED {s['error']}", file=sys.stderr)
        for d in result["unchanged"]:
            print(f"{d}: unchanged")
        for d in result["removed"]:
            print(f"{d}: removed")
        written = ", ".join(f"{t} {v['rows_written']:,} rows" for t, v in result["tables"].items() if v["committed"])
        print(f"catalog {result['catalog']}.{result['namespace']}: {written or 'nothing to write'}")
    return EXIT_INVALID if result["failed"] else EXIT_OK


def cmd_register(args: argparse.Namespace) -> int:
    from bioimage_pipeline.discovery import StoreEntry

    paths = [StoreEntry(Path(args.path).absolute(), args.dataset_id)]
    return _report_ingest(_ingest(paths, args.replace, False, args.skip_chunks, args.force), args.json)


def cmd_ingest(args: argparse.Namespace) -> int:
    paths, folders = _expand_paths(args.paths)
    result = _ingest(paths, args.replace, False, args.skip_chunks, args.force, prune=folders if args.prune else ())
    return _report_ingest(result, args.json)


def cmd_publish_chunks(args: argparse.Namespace) -> int:
    from bioimage_pipeline import ingest
    from bioimage_pipeline.discovery import StoreEntry

    path = Path(args.path).absolute()
    config = _config()
    # Only a registered store's chunks can be published, under the dataset_id it is registered as.
    dataset_id = ingest.registered_as(_catalog(config), config.namespace, path, args.dataset_id)
    return _report_ingest(_ingest([StoreEntry(path, dataset_id)], False, True, False, True), args.json)


# --- catalog commands --------------------------------------------------------------------------------


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    from bioimage_pipeline.duck import connect_catalog
    from bioimage_pipeline.errors import UsageError

    config = _config()
    con = connect_catalog(_catalog(config), config.namespace)
    try:
        try:
            relation = con.sql(args.sql)
        except duckdb.Error as exc:
            raise UsageError(f"query failed: {' '.join(str(exc).split())}") from exc
        if relation is None:
            return EXIT_OK
        if args.json:
            _print_json(relation.to_arrow_table().to_pylist())
        else:
            relation.show(max_width=200, max_rows=args.max_rows)
    finally:
        con.close()
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from bioimage_pipeline.summary import catalog_status

    config = _config()
    status = catalog_status(config, _catalog(config))
    _print_json(status.to_dict()) if args.json else print(status.render())
    return EXIT_OK


def cmd_maintain(args: argparse.Namespace) -> int:
    from bioimage_pipeline.config import parse_duration
    from bioimage_pipeline.maintenance import maintain_catalog, retention_of

    config = _config()
    retention = retention_of(
        config,
        snapshot_max_age=parse_duration(args.snapshot_age) if args.snapshot_age else None,
        orphan_min_age=parse_duration(args.orphan_age) if args.orphan_age else None,
        compact=not args.no_compact,
    )
    report = maintain_catalog(_catalog(config), config.namespace, retention)
    if args.json:
        _print_json(report.to_dict())
        return EXIT_OK
    for t in report.tables:
        print(
            f"{t.table:<32} {t.snapshots_expired:>4} snapshots expired, {t.files_deleted + t.orphans_deleted:>6} "
            f"files deleted ({t.orphans_deleted} orphans), {t.files_compacted} compacted; "
            f"{t.files_on_disk} data files for {t.live_files} live"
        )
        if t.skipped:
            print(f"  {t.skipped}")
    print(f"catalog: {report.files_on_disk} data files on disk for {report.live_files} live")
    return EXIT_OK


# --- profile commands --------------------------------------------------------------------------------


def _profile_sources(paths: Sequence[str]) -> list[ProfileSource]:
    from bioimage_pipeline.errors import UsageError
    from bioimage_pipeline.profiles.sources import sources_for_path

    sources = []
    for raw in paths:
        found = sources_for_path(Path(raw))
        if not found:
            raise UsageError(f"{Path(raw).absolute()}: no profile tables found")
        sources += found
    return sources


def _contract_report(prepared: PreparedProfiles) -> tuple[list[dict[str, Any]], bool]:
    results = []
    ok = True
    for p in prepared.tables:
        if p.table.role != "profiles":
            continue
        c = p.contract
        ok = ok and c.passed
        results.append({**c.to_dict(), "source": p.table.source, "coverage": p.coverage.to_dict()})
    return results, ok


def cmd_validate_contract(args: argparse.Namespace) -> int:
    from bioimage_pipeline.profiles.pipeline import load_image_assets, prepare_profiles

    config = _config()
    images = _scan_images(args.stores) if args.stores else load_image_assets(_catalog(config), config.namespace)
    prepared = prepare_profiles(_profile_sources(args.profiles), images, config.profile_aliases)
    results, ok = _contract_report(prepared)
    ok = ok and not prepared.failures
    if args.json:
        _print_json(
            {"valid": ok, "tables": results, "errors": [e for _, e in prepared.failures], "warnings": prepared.warnings}
        )
        return EXIT_OK if ok else EXIT_INVALID
    for r in results:
        state = "PASS" if r["passed"] else "FAIL"
        cov = r["coverage"]
        print(
            f"{state}  {r['table']}: {r['rows']:,} rows, {r['resolved_rows']:,} resolved to images "
            f"({cov['matched_rows']:,} linked)"
        )
        for problem in r["problems"]:
            print(f"      error: {problem}")
        for warning in r["warnings"]:
            print(f"      warning: {warning}")
        if r["missing_recommended"]:
            print(f"      warning: missing recommended keys: {', '.join(r['missing_recommended'])}")
    for _, error in prepared.failures:
        print(f"FAIL  {error}", file=sys.stderr)
    for warning in prepared.warnings:
        print(f"      warning: {warning}")
    return EXIT_OK if ok else EXIT_INVALID


def _scan_images(paths: Sequence[str]) -> pa.Table:
    """image_assets rows of stores scanned now (without a catalog)."""
    from bioimage_pipeline.ingest import StoreState, scan_one
    from bioimage_pipeline.tables import image_asset_rows, image_assets_table

    rows = []
    now = datetime.now(UTC)
    for path, dataset_id, _ in _expand_paths(paths)[0]:
        outcome = scan_one(StoreState(dataset_id or path.name, path, "", "cli", 0, 0, 0.0))
        if outcome.scan is None:
            print(f"warning: {outcome.error}", file=sys.stderr)
            continue
        rows += image_asset_rows(outcome.scan, "cli", now)
    return image_assets_table(rows)


def _kind_suffix(joined: str) -> str:
    """``cells`` for ``joined_profiles_cells``; ``single_cell`` for ``joined_profiles``."""
    from bioimage_pipeline.tables import JOINED_PROFILES

    return joined[len(JOINED_PROFILES) :].strip("_") or "single_cell"


def cmd_join_profiles(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from bioimage_pipeline.joins import join_prepared
    from bioimage_pipeline.profiles.pipeline import prepare_profiles

    config = _config()
    images = _scan_images([args.stores])
    prepared = prepare_profiles(_profile_sources([args.profiles]), images, config.profile_aliases)
    for _, error in prepared.failures:
        print(f"{PROG}: error: {error}", file=sys.stderr)
    blocked = [p for p in prepared.tables if p.blocked]
    for p in blocked:
        for problem in p.contract.problems:
            print(f"{PROG}: contract failed: {p.table.source}: {p.catalog_name}: {problem}", file=sys.stderr)
    # Tables that fail the contract are left out; the others are still joined.
    prepared.tables = [p for p in prepared.tables if not p.blocked]
    if not any(p.table.role == "profiles" for p in prepared.tables):
        return EXIT_INVALID if blocked else EXIT_USAGE
    joined, stats = join_prepared(images, prepared)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    # One file per object kind: the first (the single cells where there are any) at OUTPUT, each other kind
    # beside it, named by kind (joined_cells.parquet).
    outputs = {
        name: output if i == 0 else output.with_name(f"{output.stem}_{_kind_suffix(name)}{output.suffix}")
        for i, name in enumerate(joined)
    }
    for name, table in joined.items():
        pq.write_table(table, outputs[name], compression="zstd")
    summary = {
        "output": str(output),
        "outputs": {name: str(path) for name, path in outputs.items()},
        "rows": stats.total_rows,
        "matched": stats.total_matched,
        "tables": {
            t: {"rows": stats.rows[t], "matched": stats.matched[t], "joined_table": stats.joined_of(t)}
            for t in stats.rows
        },
        "rejected_tables": [p.catalog_name for p in blocked],
    }
    if args.json:
        _print_json(summary)
    else:
        for name, path in outputs.items():
            members = stats.tables[name]
            rows, matched = sum(stats.rows[t] for t in members), sum(stats.matched[t] for t in members)
            print(f"{path}: {rows:,} profile rows, {matched:,} linked to images ({', '.join(members)})")
    if blocked:
        return EXIT_INVALID
    return EXIT_OK if not prepared.failures else EXIT_USAGE


def cmd_export_cytomining(args: argparse.Namespace) -> int:
    from bioimage_pipeline import warehouse
    from bioimage_pipeline.export import export_catalog
    from bioimage_pipeline.joins import build_joined_profiles
    from bioimage_pipeline.profiles.pipeline import joinable_profile_tables, refresh_profiles

    config = _config()
    catalog = _catalog(config)
    rejected = 0
    if args.profiles:
        prepared, _ = refresh_profiles(
            catalog, config.namespace, _profile_sources(args.profiles), config.profile_aliases, complete=False
        )
        # A table that cannot be read or linked is not published; the others go through.
        for warning in [*prepared.warnings, *(w for p in prepared.tables for w in p.contract.warnings)]:
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
        for _, error in prepared.failures:
            print(f"{PROG}: error: {error}", file=sys.stderr)
        for p in prepared.tables:
            if p.blocked:
                problems = "; ".join(p.contract.problems)
                print(f"{PROG}: error: {p.table.source}: {p.catalog_name} not published: {problems}", file=sys.stderr)
        rejected = len(prepared.failures) + sum(p.blocked for p in prepared.tables)
    build_joined_profiles(catalog, config.namespace, joinable_profile_tables(catalog, config.namespace))
    root = Path(args.warehouse_root)
    manifest, published = export_catalog(catalog, config.namespace, root, include_chunks=not args.skip_chunks)
    report = warehouse.validate(root)
    if args.json:
        _print_json(
            {
                "warehouse_root": str(root),
                "published": published,
                "rejected_tables": rejected,
                "manifest": manifest,
                "validation": report.to_dict(),
            }
        )
    else:
        for t in manifest.get("tables", []):
            print(f"{t['table_name']:<40} {t['role']:<16} {t['row_count']:>10,} rows")
        print(
            f"{root}: {'new version published' if published else 'already up to date'}; "
            f"{'valid' if report.valid else 'INVALID'}"
        )
        for e in report.errors:
            print(f"  error: {e}", file=sys.stderr)
    return EXIT_OK if report.valid and not rejected else EXIT_INVALID


def cmd_validate_warehouse(args: argparse.Namespace) -> int:
    from bioimage_pipeline import warehouse

    report = warehouse.validate(Path(args.warehouse_root))
    if args.json:
        _print_json(report.to_dict())
    else:
        print(f"{report.root}: {'valid' if report.valid else 'INVALID'}")
        for e in report.errors:
            print(f"  error: {e}")
        for w in report.warnings:
            print(f"  warning: {w}")
    return EXIT_OK if report.valid else EXIT_INVALID


# --- hierarchy validation ----------------------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace) -> int:
    from bioimage_pipeline.validation import inspect_node

    report = inspect_node(args.url)
    _print_json(report.to_dict()) if args.json else print(report.render())
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from bioimage_pipeline.validation import check

    report = check(args.url, args.model, crosscheck=args.crosscheck)
    if args.json:
        _print_json(report.to_dict())
    else:
        models = ", ".join(report.models) or "no convention declared"
        errors, warnings = len(report.errors), len(report.warnings)
        state = "valid" if report.valid else "INVALID"
        print(f"{report.url}: {state} ({models}; {errors} errors, {warnings} warnings)")
        for issue in report.issues:
            print(f"  {issue.severity:<7} {issue.path}  {issue.rule}: {issue.message}")
    return EXIT_OK if report.valid else EXIT_INVALID


# --- parser ------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Catalog microscopy image stores into Apache Iceberg, check them, "
        "and join profiles to the images they were measured on.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = add("scan", cmd_scan, "Scan one store (metadata only) and print its arrays.")
    p.add_argument("path")
    p.add_argument("--dataset-id", help="identity to report (default: the store's file name)")
    p.add_argument("--json", action="store_true", help="print the image_assets rows as JSON")

    p = add("summarize", cmd_summarize, "Scan one store and print an aggregated summary.")
    p.add_argument("path")
    p.add_argument("--dataset-id")
    p.add_argument("--json", action="store_true")

    p = add("register", cmd_register, "Scan one store into the catalog (image_assets, chunk_index, store_registry).")
    p.add_argument("path")
    p.add_argument("--dataset-id", help="identity in the catalog (default: the store's file name)")
    p.add_argument(
        "--replace", action="store_true", help="allow re-registering this dataset_id for a different location"
    )
    p.add_argument("--skip-chunks", action="store_true", help="do not write chunk_index rows")
    p.add_argument("--force", action="store_true", help="rescan even if the store is unchanged")
    p.add_argument("--json", action="store_true")

    p = add(
        "ingest",
        cmd_ingest,
        "Scan many stores (or every store under a folder) into the catalog in one run. Exit 0 when every store "
        "went in, 1 when some failed (the others are committed), 2 on a usage error.",
    )
    p.add_argument("paths", nargs="+")
    p.add_argument(
        "--replace",
        action="store_true",
        help="register a store even where its dataset_id or its location is registered differently",
    )
    p.add_argument(
        "--prune", action="store_true", help="remove stores registered under a FOLDER given that are no longer in it"
    )
    p.add_argument("--skip-chunks", action="store_true", help="do not write chunk_index rows")
    p.add_argument("--force", action="store_true", help="rescan even stores that are unchanged")
    p.add_argument("--json", action="store_true")

    p = add(
        "publish-chunks",
        cmd_publish_chunks,
        "Scan a registered store and (re)write only its chunk_index rows.",
    )
    p.add_argument("path")
    p.add_argument("--dataset-id")
    p.add_argument("--json", action="store_true")

    p = add("query", cmd_query, "Run SQL (DuckDB) over the catalog; every table is a view of the same name.")
    p.add_argument("sql")
    p.add_argument("--json", action="store_true", help="print a list of row objects")
    p.add_argument("--max-rows", type=int, default=40, help="rows shown in the text table (default 40)")

    p = add("status", cmd_status, "Summarise the catalog: stores, arrays, chunks, profiles, joins.")
    p.add_argument("--json", action="store_true")

    p = add(
        "maintain",
        cmd_maintain,
        "Expire old snapshots, delete files no snapshot references (with what killed runs left behind), and "
        "compact small files. Safe while the pipeline runs.",
    )
    p.add_argument(
        "--snapshot-age",
        metavar="AGE",
        help="expire snapshots older than this (default 1h, BIOIMAGE_SNAPSHOT_RETENTION)",
    )
    p.add_argument(
        "--orphan-age",
        metavar="AGE",
        help="delete unreferenced files older than this (default 1d, BIOIMAGE_ORPHAN_RETENTION)",
    )
    p.add_argument("--no-compact", action="store_true", help="leave small files as they are")
    p.add_argument("--json", action="store_true")

    p = add(
        "validate-contract",
        cmd_validate_contract,
        "Check profile tables against the microscopy join contract (exit 1 if a table fails).",
    )
    p.add_argument("profiles", nargs="+", help="profile files or folders")
    p.add_argument("--stores", nargs="+", help="resolve against these stores instead of the catalog")
    p.add_argument("--json", action="store_true")

    p = add(
        "join-profiles",
        cmd_join_profiles,
        "Join a profile table to the images of a store (or every store under a folder); write Parquet.",
    )
    p.add_argument("stores", metavar="STORE_OR_ROOT")
    p.add_argument("profiles", metavar="PROFILE")
    p.add_argument(
        "--output",
        required=True,
        help="Parquet file to write: the single cells (or the first object kind, when there are none); each "
        "other kind (a compartment, image rows) goes beside it as <stem>_<kind>.parquet",
    )
    p.add_argument("--json", action="store_true")

    p = add(
        "export-cytomining",
        cmd_export_cytomining,
        "Export the catalog (and optional profile tables) to a Cytomining Parquet warehouse.",
    )
    p.add_argument("--warehouse-root", required=True)
    p.add_argument("--profiles", nargs="+", help="profile files or folders to publish first")
    p.add_argument("--skip-chunks", action="store_true", help="leave images.chunk_index out")
    p.add_argument("--json", action="store_true")

    p = add("inspect", cmd_inspect, "Summarise a group or array: nodes, shapes, dtypes, chunks, conventions.")
    p.add_argument("url", help="a store, or a node inside one (path/to/plate.zarr/B/03/0)")
    p.add_argument("--json", action="store_true")

    from bioimage_pipeline.validation.models import MODELS  # cheap: no validator behind it

    p = add(
        "check",
        cmd_check,
        "Validate a group or array against OME-NGFF or CellMap conventions (exit 1 if invalid). Without MODEL, "
        "every convention the node declares is checked.",
    )
    p.add_argument("url", help="a store, or a node inside one")
    p.add_argument("model", nargs="?", choices=MODELS, metavar="MODEL", help=f"one of: {', '.join(MODELS)}")
    p.add_argument("--json", action="store_true", help='print {"valid": bool, "issues": [...]}')
    p.add_argument("--crosscheck", action="store_true", help="also run ome-zarr-models on OME-NGFF documents")

    p = add(
        "validate-warehouse",
        cmd_validate_warehouse,
        "Check a Cytomining warehouse against the draft specification and its own files.",
    )
    p.add_argument("warehouse_root")
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from bioimage_pipeline.errors import BioimageError

    debug = bool(os.environ.get("BIOIMAGE_DEBUG"))
    try:
        return int(args.func(args))
    except BioimageError as exc:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as Unix tools do on SIGPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, OSError) as exc:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
            "(set BIOIMAGE_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
