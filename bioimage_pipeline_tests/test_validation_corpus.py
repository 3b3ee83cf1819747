"""``check`` and ``inspect_node`` on stores written by third parties (the shared corpus, read in place)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bioimage_pipeline.validation import ValidationReport, check, inspect_node
from bioimage_pipeline_tests.corpus import CORPUS

EXAMPLES = CORPUS / "BioImageTools+ome-zarr-examples" / "data"
N5 = CORPUS / "saalfeldlab+n5-universe" / "src" / "test" / "resources"


def classify(report: ValidationReport) -> str:
    """The ome-ngff-validator's three outcomes: errors make a store invalid; a warning other than a missing
    recommended field (which that validator does not report) makes it a warning; else it is valid."""
    if not report.valid:
        return "invalid"
    if any(i.severity == "warning" and not i.rule.endswith(".recommended") for i in report.issues):
        return "warning"
    return "valid"


def _errors(report: ValidationReport) -> set[tuple[str, str]]:
    return {(i.path, i.rule) for i in report.issues if i.severity == "error"}


# --- ome-zarr-examples: valid / invalid / warning ------------------------------------------------------

# The folders record what the ome-ngff-validator (a JSON-Schema check plus a dtype check) said about each
# store. Where the specification's prose says otherwise, we follow the prose and list the store here with
# the errors we report instead.
FOLDER_ERRORS = {
    # create_example_data.py gives wells A/2 and B/1 swapped indices ({"path": "A/2", "rowIndex": 1,
    # "columnIndex": 0}). 0.4 §plate: "The rowIndex, columnIndex, and path MUST all refer to the same
    # row/column pair." The ome-ngff-validator does not compare them.
    "valid/plate-01.zarr": {("/", "ngff.plate.wells.index_mismatch")},
}


def _example_stores() -> list:
    stores = sorted(EXAMPLES.glob("*/*.zarr"))
    return [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in stores]


def test_the_example_collection_is_complete() -> None:
    folders = {p.values[0].parent.name for p in _example_stores()}
    assert folders == {"valid", "invalid", "warning"}
    assert len(_example_stores()) == 10


@pytest.mark.parametrize("store", _example_stores())
@pytest.mark.parametrize("model", [None, "ngff"])
def test_example_store_is_classified_as_its_folder_says(store: Path, model: str | None) -> None:
    report = check(store, model)
    key = f"{store.parent.name}/{store.name}"
    if key in FOLDER_ERRORS:
        assert _errors(report) == FOLDER_ERRORS[key]
        return
    assert classify(report) == store.parent.name, report.issues


EXPECTED_EXAMPLE_PROBLEMS = {
    "invalid/image-01.zarr": ("/", "conventions.none"),  # empty attributes
    "invalid/image-02.zarr": ("/", "ngff.multiscales.empty"),
    "invalid/image-03.zarr": ("0", "ngff.multiscales.datasets.array.missing"),
    "invalid/image-04.zarr": ("1", "ngff.multiscales.datasets.array.ndim"),  # a 2-D level under 3 axes
    "warning/image-01.zarr": ("/", "ngff.multiscales.datasets.array.dtype"),  # int64 then float64 levels
}


@pytest.mark.parametrize(("key", "expected"), sorted(EXPECTED_EXAMPLE_PROBLEMS.items()))
def test_example_store_fails_for_the_reason_it_was_made(key: str, expected: tuple[str, str]) -> None:
    report = check(EXAMPLES / key)
    found = {(i.path, i.rule) for i in report.issues if not i.rule.endswith(".recommended")}
    assert found == {expected}


def test_plate_example_is_walked_down_to_its_fields() -> None:
    report = check(EXAMPLES / "valid" / "plate-01.zarr")
    assert report.models == ["ngff.plate"]
    paths = {i.path for i in report.issues}
    # Every well and field is visited (their missing recommended fields are reported there).
    assert {"A/1", "A/2", "B/1", "B/2", "A/1/0", "A/2/0", "B/1/0", "B/2/0"} <= paths
    assert {i.rule for i in report.issues if i.path == "A/1"} == {"ngff.well.images.acquisition.undeclared"}


def test_the_ngff_model_on_an_empty_group_says_so() -> None:
    report = check(EXAMPLES / "invalid" / "image-01.zarr", "ngff")
    assert _errors(report) == {("/", "ngff.missing")}


# --- other OME-Zarr written by third parties ------------------------------------------------------------

GALAXY = CORPUS / "BMCV+galaxy-image-analysis" / "tools"
VIZARR = CORPUS / "hms-dbmi+vizarr" / "_exploded_from_fixtures_json"


@pytest.mark.parametrize(
    "store",
    [
        GALAXY / "bioformats2raw/test-data/camera.ome.zarr",
        GALAXY / "bioformats2raw/test-data/coins.ome.zarr",
        GALAXY / "bioformats2raw/test-data/xyz_8bit__mitotic_plate_calibrated.ome.zarr",
        GALAXY / "2d_feature_extraction/test-data/input/input9.zarr",
        GALAXY / "2d_feature_extraction/test-data/input/input10.zarr",
        GALAXY / "2d_feature_extraction/test-data/input/input13.zarr",
        GALAXY / "crop_image/test-data/cyx_uint8.zarr",
        GALAXY / "crop_image/test-data/yx_uint8_mask.zarr",
        GALAXY / "libcarna/test-data/input/float32_5z_16y_20x-no_z_spacing.zarr",
        CORPUS / "BioImageTools+ome-zarr-models-py/tests/v04/data/hcs_example.ome.zarr",
        VIZARR / "v0.4/idr0054-multichannel",
        VIZARR / "v0.4/idr0083-5d-greyscale",
        VIZARR / "v0.5/idr0047-multiscale",
    ],
    ids=lambda p: p.name,
)
def test_real_world_stores_that_conform(store: Path) -> None:
    report = check(store)
    assert report.valid, report.issues
    assert report.models and all(m.startswith("ngff") for m in report.models)


def test_bioformats2raw_collection_reaches_its_series_images() -> None:
    report = check(GALAXY / "bioformats2raw/test-data/camera.ome.zarr")
    assert report.models == ["ngff"]
    # The series image under 0/ was checked (it lacks the recommended multiscale type and metadata).
    assert ("0", "ngff.multiscales.type.recommended") in {(i.path, i.rule) for i in report.issues}


def test_fractal_plate_has_string_window_values() -> None:
    # fractal-tasks-core's fixture writes omero windows as strings ("0", "10"); the suite's
    # invalid_channels_window case makes that an error. Found through the plate, well and field.
    report = check(CORPUS / "fractal-analytics-platform+fractal-tasks-core/tests/data/plate_ones.zarr")
    assert report.models == ["ngff.plate"]
    assert _errors(report) == {("B/03/0", "ngff.omero.window.values")}
    assert len(report.errors) == 8  # min, max, start, end of two channels


def test_field_of_a_plate_checked_on_its_own_keeps_its_store_path() -> None:
    report = check(CORPUS / "fractal-analytics-platform+fractal-tasks-core/tests/data/plate_ones.zarr/B/03/0")
    assert report.models == ["ngff.image"]
    assert {i.path for i in report.errors} == {"B/03/0"}


def test_idr_label_with_more_levels_than_its_image() -> None:
    report = check(VIZARR / "v0.4/idr0062-with-labels")
    assert _errors(report) == {("labels/0", "ngff.image_label.levels")}


def test_old_versions_are_named_not_misjudged() -> None:
    report = check(VIZARR / "v0.1/idr0001-plate")
    assert [(i.rule, i.severity) for i in report.issues] == [("ngff.version.unsupported", "error")]
    assert "0.1" in report.issues[0].message


# --- N5 containers (n5-universe test resources) -----------------------------------------------------------

NG_GROUP_RULES = {
    "cellmap.neuroglancer_n5.axes",
    "cellmap.neuroglancer_n5.units",
    "cellmap.neuroglancer_n5.scales",
    "cellmap.neuroglancer_n5.pixel_resolution",
}


def _at(path: str, rules: set[str]) -> set[tuple[str, str]]:
    return {(path, r) for r in rules}


N5_CASES = [
    # (node, model, expected errors, expected declared models)
    ("test.n5", None, {("/", "conventions.none")}, []),
    ("test.n5/cosem", None, {("cosem", "cellmap.cosem.pixel_resolution")}, ["cellmap.cosem"]),
    ("test.n5/c0/s0", None, {("c0/s0", "cellmap.cosem.pixel_resolution.consistent")}, ["cellmap.cosem"]),
    ("test.n5/c0/s1", None, {("c0/s1", "cellmap.cosem.pixel_resolution.consistent")}, ["cellmap.cosem"]),
    ("test.n5/n5v_pr", None, set(), ["cellmap.neuroglancer_n5"]),
    ("test.n5/n5v_pr-ds", None, set(), ["cellmap.neuroglancer_n5"]),
    ("test.n5/n5v_pra", None, {("n5v_pra", "cellmap.neuroglancer_n5.pixel_resolution")}, ["cellmap.neuroglancer_n5"]),
    (
        "test.n5/n5v_pra-ds",
        None,
        {("n5v_pra-ds", "cellmap.neuroglancer_n5.pixel_resolution")},
        ["cellmap.neuroglancer_n5"],
    ),
    ("test.n5/n5v_ds", None, {("n5v_ds", "conventions.none")}, []),
    ("test.n5/others/res", None, {("others/res", "conventions.none")}, []),
    (
        "test.n5/cosem_ms",
        "cellmap.cosem",
        _at("cosem_ms", NG_GROUP_RULES | {"cellmap.cosem.multiscales"})
        | {(f"cosem_ms/s{i}", "cellmap.cosem.pixel_resolution") for i in range(3)},
        ["cellmap.cosem"],
    ),
    ("test.n5/c0", "cellmap.neuroglancer_n5", _at("c0", NG_GROUP_RULES), ["cellmap.neuroglancer_n5"]),
    (
        "root_dataset.n5",
        "cellmap.cosem",
        _at("/", NG_GROUP_RULES | {"cellmap.cosem.multiscales"})
        | {(f"s{i}", "cellmap.cosem.pixel_resolution") for i in range(3)},
        ["cellmap.cosem"],
    ),
    # Group metadata only (a fixture): everything is consistent, but its six levels are absent.
    (
        "ngff.n5/ngff_grpAttributes",
        None,
        {(f"s{i}", "cellmap.multiscale.array.missing") for i in range(6)},
        ["cellmap.cosem"],
    ),
    (
        "ngff.n5/ngff_grpAttributes",
        "cellmap.neuroglancer_n5",
        {(f"s{i}", "cellmap.multiscale.array.missing") for i in range(6)},
        ["cellmap.neuroglancer_n5"],
    ),
    (
        "translation_examples.n5/scattered_multiscales",
        "cellmap.neuroglancer_n5",
        _at("scattered_multiscales", NG_GROUP_RULES),
        ["cellmap.neuroglancer_n5"],
    ),
    # canonical.n5 has no root attributes.json; its .n5 name still marks the container root.
    ("canonical.n5/affine", None, {("affine", "conventions.none")}, []),
]


@pytest.mark.parametrize(("node", "model", "errors", "models"), N5_CASES, ids=lambda v: str(v)[:40])
def test_n5_corpus_node(node: str, model: str | None, errors: set[tuple[str, str]], models: list[str]) -> None:
    report = check(N5 / node, model)
    assert _errors(report) == errors, report.issues
    assert report.models == models
    assert not report.warnings, report.warnings


def test_ngff_grp_attributes_group_metadata_is_consistent() -> None:
    # The only problems are the missing arrays: axes, units, scales and transforms agree with each other.
    report = check(N5 / "ngff.n5" / "ngff_grpAttributes", "cellmap.cosem")
    assert {i.rule for i in report.issues} == {"cellmap.multiscale.array.missing"}


@pytest.mark.parametrize("container", sorted(N5.glob("*.n5")), ids=lambda p: p.name)
def test_every_n5_node_can_be_checked_and_inspected(container: Path) -> None:
    docs = {p.parent: json.loads(p.read_text()) for p in container.rglob("attributes.json")}
    arrays = {path for path, doc in docs.items() if "dimensions" in doc and "dataType" in doc}
    listing = inspect_node(container)
    assert listing.format == "n5"
    listed = {container / n.path for n in listing.nodes if n.kind == "array"}
    assert listed == arrays
    for node in listing.nodes:
        report = check(container / node.path if node.path else container)
        assert isinstance(report.valid, bool)


def test_inspect_reports_geometry_in_c_order() -> None:
    listing = inspect_node(N5 / "test.n5")
    cosem = next(n for n in listing.nodes if n.path == "cosem")
    assert cosem.shape == (129, 256, 256)  # attributes.json says [256, 256, 129], fastest first
    assert cosem.chunks == (16, 16, 16)
    assert cosem.conventions == ("cellmap.cosem",)
    text = listing.render()
    assert "129×256×256" in text and "cellmap.neuroglancer_n5" in text


# --- ome-zarr-models as a second opinion -----------------------------------------------------------------

NGFF_STORES = [
    *sorted(EXAMPLES.glob("*/*.zarr")),
    *sorted(VIZARR.glob("v0.[45]/*")),
    *sorted(GALAXY.glob("*/test-data/**/*.zarr")),
    CORPUS / "fractal-analytics-platform+fractal-tasks-core/tests/data/plate_ones.zarr",
    CORPUS / "BioImageTools+ome-zarr-models-py/tests/v04/data/hcs_example.ome.zarr",
]


def test_ome_zarr_models_agrees_on_every_ngff_store_of_the_corpus() -> None:
    assert len(NGFF_STORES) == 32
    for store in NGFF_STORES:
        assert check(store, crosscheck=True).issues == check(store).issues, store
