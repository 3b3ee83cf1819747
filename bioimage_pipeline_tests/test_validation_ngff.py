"""OME-NGFF hierarchy rules on stores written in the test: a conforming one, then each rule broken once."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bioimage_pipeline.errors import StoreError, UsageError
from bioimage_pipeline.validation import MODELS, ValidationReport, check, check_attributes, inspect_node
from bioimage_pipeline.validation.build import (
    ArrayStub,
    GroupSpec,
    ngff_image,
    ngff_plate,
    ngff_well,
    to_zarr,
)
from bioimage_pipeline.validation.ngff_models import model_issues

VERSIONS = ["0.4", "0.5"]
OMERO = {
    "channels": [
        {"color": "FF0000", "label": "DNA", "window": {"min": 0, "max": 65535, "start": 0, "end": 1000}},
        {"color": "00FF00", "label": "actin", "window": {"min": 0, "max": 65535, "start": 0, "end": 1000}},
    ]
}


def levels(shape: tuple[int, ...] = (2, 64, 64), count: int = 2, dtype: str = "uint16") -> list[ArrayStub]:
    """A pyramid of metadata-only arrays, halving the last two axes."""
    return [ArrayStub(shape[:-2] + tuple(s // 2**k for s in shape[-2:]), dtype) for k in range(count)]


def image(version: str, *, count: int = 2, dtype: str = "uint16", labels: dict | None = None) -> GroupSpec:
    scales = [[1.0, 0.5 * 2**k, 0.5 * 2**k] for k in range(count)]
    return ngff_image(
        levels(count=count, dtype=dtype),
        axes="cyx",
        units=[None, "micrometer", "micrometer"],
        scales=scales,
        version=version,
        omero=OMERO,
        labels=labels,
    )


def label(version: str, *, count: int = 2, dtype: str = "uint32", shape=(2, 64, 64)) -> GroupSpec:
    return ngff_image(
        levels(shape, count, dtype),
        axes="cyx",
        units=[None, "micrometer", "micrometer"],
        scales=[[1.0, 0.5 * 2**k, 0.5 * 2**k] for k in range(count)],
        version=version,
        name="cells",
        image_label={"colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}], "source": {"image": "../../"}},
    )


def plate(version: str, *, fields: int = 2, acquisitions: list | None = None) -> GroupSpec:
    wells = {
        f"{r}/{c}": ngff_well({str(f): image(version) for f in range(fields)}, version=version)
        for r in "AB"
        for c in "12"
    }
    return ngff_plate(
        wells, rows=["A", "B"], columns=["1", "2"], name="plate", version=version, acquisitions=acquisitions
    )


def errors(report: ValidationReport) -> set[tuple[str, str]]:
    return {(i.path, i.rule) for i in report.issues if i.severity == "error"}


def warnings(report: ValidationReport) -> set[tuple[str, str]]:
    return {(i.path, i.rule) for i in report.issues if i.severity == "warning"}


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def edit_attrs(node: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Change a node's attributes in place, whichever Zarr version holds them."""
    if (node / "zarr.json").exists():
        _edit(node / "zarr.json", lambda doc: change(doc.setdefault("attributes", {})))
    else:
        if not (node / ".zattrs").exists():
            (node / ".zattrs").write_text("{}")
        _edit(node / ".zattrs", change)


def edit_array(node: Path, change: Callable[[dict[str, Any]], None]) -> None:
    _edit(node / ("zarr.json" if (node / "zarr.json").exists() else ".zarray"), change)


def ngff(attrs: dict[str, Any]) -> dict[str, Any]:
    return attrs.get("ome", attrs)


# --- conforming hierarchies ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_built_image_with_labels_has_no_issue_at_all(tmp_path: Path, version: str) -> None:
    store = to_zarr(image(version, labels={"cells": label(version)}), tmp_path / "image.zarr")
    report = check(store)
    assert report.models == ["ngff.image"]
    assert report.issues == []
    assert report.valid
    assert check(store / "labels", "ngff.labels").issues == []
    assert check(store / "labels" / "cells").models == ["ngff.labels"]


@pytest.mark.parametrize("version", VERSIONS)
def test_built_plate_has_no_issue_at_all(tmp_path: Path, version: str) -> None:
    store = to_zarr(plate(version), tmp_path / "plate.zarr")
    report = check(store)
    assert report.models == ["ngff.plate"]
    assert report.issues == []
    assert check(store / "A" / "1", "ngff.well").issues == []
    assert check(store / "A" / "1" / "0", "ngff.image").issues == []


# --- array rules -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_missing_level_array(tmp_path: Path, version: str) -> None:
    store = to_zarr(image(version), tmp_path / "image.zarr")
    shutil.rmtree(store / "1")
    assert errors(check(store)) == {("1", "ngff.multiscales.datasets.array.missing")}


@pytest.mark.parametrize("version", VERSIONS)
def test_level_with_wrong_dimensionality(tmp_path: Path, version: str) -> None:
    store = to_zarr(image(version), tmp_path / "image.zarr")

    def flatten(doc: dict[str, Any]) -> None:
        doc["shape"] = doc["shape"][1:]
        if "chunk_grid" in doc:
            doc["chunk_grid"]["configuration"]["chunk_shape"] = doc["chunk_grid"]["configuration"]["chunk_shape"][1:]
            doc["dimension_names"] = doc["dimension_names"][1:]
        else:
            doc["chunks"] = doc["chunks"][1:]

    edit_array(store / "1", flatten)
    assert errors(check(store)) == {("1", "ngff.multiscales.datasets.array.ndim")}


@pytest.mark.parametrize("version", VERSIONS)
def test_levels_out_of_order(tmp_path: Path, version: str) -> None:
    store = to_zarr(image(version), tmp_path / "image.zarr")
    edit_array(store / "1", lambda doc: doc.update(shape=[2, 64, 128]))
    report = check(store)
    assert errors(report) == {("1", "ngff.multiscales.datasets.array.order")}
    assert "'x'" in report.errors[0].message


@pytest.mark.parametrize("version", VERSIONS)
def test_levels_of_different_dtypes_warn(tmp_path: Path, version: str) -> None:
    spec = image(version)
    level = spec.members["1"]
    spec.members["1"] = type(level)(level.shape, "float32", level.chunks, level.attributes, level.dimension_names)
    report = check(to_zarr(spec, tmp_path / "image.zarr"))
    assert report.valid
    assert warnings(report) == {("/", "ngff.multiscales.datasets.array.dtype")}


def test_zarr_v3_levels_need_dimension_names_matching_the_axes(tmp_path: Path) -> None:
    store = to_zarr(image("0.5"), tmp_path / "image.zarr")
    edit_array(store / "0", lambda doc: doc.pop("dimension_names"))
    edit_array(store / "1", lambda doc: doc.update(dimension_names=["c", "x", "y"]))
    report = check(store)
    assert errors(report) == {
        ("0", "ngff.multiscales.datasets.array.dimension_names"),
        ("1", "ngff.multiscales.datasets.array.dimension_names"),
    }


@pytest.mark.parametrize(("version", "zarr_format"), [("0.4", 3), ("0.5", 2)])
def test_version_stored_in_the_wrong_zarr_format(tmp_path: Path, version: str, zarr_format: int) -> None:
    store = to_zarr(image(version), tmp_path / "image.zarr", zarr_format=zarr_format)
    assert ("/", "ngff.zarr_format") in errors(check(store))


def test_unreadable_level_document_is_an_issue_not_a_crash(tmp_path: Path) -> None:
    store = to_zarr(image("0.4"), tmp_path / "image.zarr")
    (store / "1" / ".zarray").write_text("{not json")
    report = check(store)
    assert errors(report) == {("1", "store.unreadable")}
    assert ".zarray" in report.errors[0].message


# --- omero -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_omero_channel_count_must_match_the_channel_axis(tmp_path: Path, version: str) -> None:
    store = to_zarr(image(version), tmp_path / "image.zarr")
    edit_attrs(store, lambda a: ngff(a)["omero"]["channels"].pop())
    report = check(store)
    assert report.valid
    assert warnings(report) == {("/", "ngff.omero.channels.count")}


def test_omero_colour_is_required_in_05_even_though_its_schema_forgot(tmp_path: Path) -> None:
    store = to_zarr(image("0.5"), tmp_path / "image.zarr")
    edit_attrs(store, lambda a: a["ome"]["omero"]["channels"][0].pop("color"))
    edit_attrs(store, lambda a: a["ome"]["omero"]["channels"][1].update(color="#00FF00"))
    rules = [i.rule for i in check(store).errors]
    assert rules == ["ngff.omero.color.missing", "ngff.omero.color.invalid"]


# --- labels ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_label_images_hold_integers(tmp_path: Path, version: str) -> None:
    store = to_zarr(image(version, labels={"cells": label(version, dtype="float32")}), tmp_path / "i.zarr")
    assert errors(check(store)) == {
        ("labels/cells/0", "ngff.image_label.dtype"),
        ("labels/cells/1", "ngff.image_label.dtype"),
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_label_images_have_as_many_levels_as_their_image(tmp_path: Path, version: str) -> None:
    store = to_zarr(image(version, labels={"cells": label(version, count=3)}), tmp_path / "i.zarr")
    assert errors(check(store)) == {("labels/cells", "ngff.image_label.levels")}
    # The label image checked on its own is still compared with its image.
    assert errors(check(store / "labels" / "cells")) == {("labels/cells", "ngff.image_label.levels")}


@pytest.mark.parametrize("version", VERSIONS)
def test_label_shape_should_follow_the_image(tmp_path: Path, version: str) -> None:
    odd = label(version, shape=(1, 64, 60))
    report = check(to_zarr(image(version, labels={"cells": odd}), tmp_path / "i.zarr"))
    assert report.valid
    assert warnings(report) == {("labels/cells", "ngff.image_label.shape")}


@pytest.mark.parametrize("version", VERSIONS)
def test_listed_label_must_exist(tmp_path: Path, version: str) -> None:
    store = to_zarr(image(version, labels={"cells": label(version)}), tmp_path / "i.zarr")
    edit_attrs(store / "labels", lambda a: ngff(a)["labels"].append("nuclei"))
    assert errors(check(store)) == {("labels/nuclei", "ngff.labels.path.missing")}


def test_unlisted_label_image_warns_in_05(tmp_path: Path) -> None:
    store = to_zarr(image("0.5", labels={"cells": label("0.5"), "nuclei": label("0.5")}), tmp_path / "i.zarr")
    edit_attrs(store / "labels", lambda a: a["ome"]["labels"].remove("nuclei"))
    report = check(store)
    assert report.valid
    assert warnings(report) == {("labels/nuclei", "ngff.labels.unlisted")}


# --- plates and wells ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_plate_row_group_must_exist(tmp_path: Path, version: str) -> None:
    store = to_zarr(plate(version), tmp_path / "plate.zarr")
    (store / "B" / ("zarr.json" if version == "0.5" else ".zgroup")).unlink()
    assert errors(check(store)) == {("B", "ngff.plate.row.missing")}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_broken_well_is_reported_not_just_the_first(tmp_path: Path, version: str) -> None:
    store = to_zarr(plate(version), tmp_path / "plate.zarr")
    shutil.rmtree(store / "A" / "2")
    shutil.rmtree(store / "B" / "1" / "1")
    shutil.rmtree(store / "B" / "2" / "0" / "1")
    assert errors(check(store)) == {
        ("A/2", "ngff.plate.well.missing"),
        ("B/1/1", "ngff.well.images.group.missing"),
        ("B/2/0/1", "ngff.multiscales.datasets.array.missing"),
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_well_indices_must_agree_with_the_path(tmp_path: Path, version: str) -> None:
    store = to_zarr(plate(version), tmp_path / "plate.zarr")
    edit_attrs(store, lambda a: ngff(a)["plate"]["wells"][1].update(rowIndex=1, columnIndex=0))
    report = check(store)
    assert errors(report) == {("/", "ngff.plate.wells.index_mismatch")}
    assert "'A/2'" in report.errors[0].message


@pytest.mark.parametrize("version", VERSIONS)
def test_field_acquisitions_must_be_declared_by_the_plate(tmp_path: Path, version: str) -> None:
    acquisitions = [
        {"id": 1, "name": "first", "maximumfieldcount": 2},
        {"id": 2, "name": "second", "maximumfieldcount": 1},
    ]
    store = to_zarr(plate(version, acquisitions=acquisitions), tmp_path / "plate.zarr")
    # Two acquisitions: each field must say which one it belongs to.
    assert ("A/1", "ngff.well.images.acquisition.missing") in errors(check(store))

    def assign(images: list[dict[str, Any]], first: int, second: int) -> None:
        images[0]["acquisition"], images[1]["acquisition"] = first, second

    for well in ("A/1", "A/2", "B/1", "B/2"):
        edit_attrs(store / well, lambda a: assign(ngff(a)["well"]["images"], 1, 2))
    assert check(store).issues == []
    edit_attrs(store / "A/2", lambda a: assign(ngff(a)["well"]["images"], 1, 7))
    edit_attrs(store / "B/1", lambda a: assign(ngff(a)["well"]["images"], 2, 2))
    assert errors(check(store)) == {
        ("A/2", "ngff.well.images.acquisition.unknown"),
        ("B/1", "ngff.plate.acquisitions.maximumfieldcount.exceeded"),
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_wells_hold_no_more_fields_than_field_count(tmp_path: Path, version: str) -> None:
    store = to_zarr(plate(version), tmp_path / "plate.zarr")
    edit_attrs(store, lambda a: ngff(a)["plate"].update(field_count=1))
    assert errors(check(store)) == {(w, "ngff.plate.field_count.exceeded") for w in ("A/1", "A/2", "B/1", "B/2")}


def test_a_hierarchy_uses_one_version(tmp_path: Path) -> None:
    store = to_zarr(plate("0.4"), tmp_path / "plate.zarr")
    field = store / "A" / "1" / "0"
    edit_attrs(
        field, lambda a: a.update(ome={"version": "0.5", "multiscales": a.pop("multiscales"), "omero": a.pop("omero")})
    )
    rules = errors(check(store))
    assert ("A/1/0", "ngff.version.consistent") in rules
    # 0.5 metadata in Zarr v2 is also the wrong container format.
    assert ("A/1/0", "ngff.zarr_format") in rules


def test_model_must_match_what_the_node_declares(tmp_path: Path) -> None:
    store = to_zarr(image("0.5"), tmp_path / "image.zarr")
    assert errors(check(store, "ngff.plate")) == {("/", "ngff.plate.missing")}
    assert errors(check(store, "ngff.labels")) == {("/", "ngff.labels.missing")}
    assert errors(check(store / "0", "ngff")) == {("0", "ngff.missing")}
    assert errors(check(store, "cellmap.cosem")) >= {("/", "cellmap.cosem.multiscales")}


# --- bioformats2raw ---------------------------------------------------------------------------------------


def _bioformats2raw(tmp_path: Path, version: str) -> Path:
    def ome(attrs: dict[str, Any]) -> dict[str, Any]:
        return {"ome": {"version": "0.5", **attrs}} if version == "0.5" else attrs

    spec = GroupSpec(
        ome({"bioformats2raw.layout": 3}),
        {"0": image(version), "1": image(version), "OME": GroupSpec(ome({"series": ["0", "1"]}))},
    )
    store = to_zarr(spec, tmp_path / "collection.zarr", zarr_format=3 if version == "0.5" else 2)
    (store / "OME" / "METADATA.ome.xml").write_text("<OME/>")
    return store


@pytest.mark.parametrize("version", VERSIONS)
def test_bioformats2raw_collection(tmp_path: Path, version: str) -> None:
    store = _bioformats2raw(tmp_path, version)
    assert check(store).issues == []
    assert check(store).models == ["ngff"]
    shutil.rmtree(store / "1")
    (store / "OME" / "METADATA.ome.xml").unlink()
    edit_attrs(store / "0", lambda a: ngff(a)["omero"]["channels"][0].pop("color"))
    report = check(store)
    assert errors(report) == {
        ("1", "ngff.bioformats2raw.series.group.missing"),
        ("0", "ngff.omero.color.missing"),
    }
    assert warnings(report) == {("/", "ngff.bioformats2raw.ome_xml.recommended")}


# --- the check() interface ---------------------------------------------------------------------------------


def test_unknown_model_is_a_usage_error_listing_the_models(tmp_path: Path) -> None:
    store = to_zarr(image("0.5"), tmp_path / "image.zarr")
    with pytest.raises(UsageError) as raised:
        check(store, "ngff.images")
    for model in MODELS:
        assert model in str(raised.value)


def test_unreadable_node_is_a_store_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        check(tmp_path / "absent.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="no Zarr or N5 metadata"):
        check(tmp_path / "plain")
    store = to_zarr(image("0.5"), tmp_path / "image.zarr")
    (store / "zarr.json").write_text("[1, 2")
    with pytest.raises(StoreError) as raised:
        check(store)
    assert "zarr.json" in str(raised.value) and "\n" not in str(raised.value)


def test_file_urls_nodes_inside_stores_and_metadata_documents(tmp_path: Path) -> None:
    store = to_zarr(plate("0.5"), tmp_path / "my plate.zarr")
    field = store / "B" / "2" / "1"
    for url in (field, str(field), field.as_uri(), field / "zarr.json"):
        report = check(url)
        assert report.models == ["ngff.image"] and report.valid
    edit_attrs(field, lambda a: a["ome"]["multiscales"][0]["axes"][1].update(name="x"))
    issue = check(field.as_uri()).errors[0]
    assert (issue.path, issue.rule) == ("B/2/1", "ngff.multiscales.axes.unique")


def test_zipped_store_and_a_node_inside_it(tmp_path: Path) -> None:
    store = to_zarr(plate("0.4"), tmp_path / "plate.zarr")
    edit_attrs(store / "A" / "1" / "0", lambda a: a["multiscales"][0]["datasets"].reverse())
    archive = tmp_path / "plate.zarr.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in store.rglob("*"):
            if path.is_file():
                zf.write(path, path.relative_to(store).as_posix())
    assert errors(check(archive)) == {
        ("A/1/0", "ngff.multiscales.datasets.order"),
        ("A/1/0/0", "ngff.multiscales.datasets.array.order"),
    }
    assert check(archive / "A" / "1" / "0").models == ["ngff.image"]


def test_report_to_dict_is_plain_json(tmp_path: Path) -> None:
    store = to_zarr(image("0.4"), tmp_path / "image.zarr")
    edit_attrs(store, lambda a: a["multiscales"][0].pop("name"))
    doc = json.loads(json.dumps(check(store).to_dict()))
    assert doc == {
        "valid": True,
        "url": str(store),
        "models": ["ngff.image"],
        "issues": [
            {
                "path": "/",
                "rule": "ngff.multiscales.name.recommended",
                "severity": "warning",
                "message": "multiscales[0] has no 'name'; it should",
            }
        ],
    }


def test_inspect_lists_the_plate_tree(tmp_path: Path) -> None:
    store = to_zarr(plate("0.5", fields=1), tmp_path / "plate.zarr")
    listing = inspect_node(store)
    assert listing.format == "zarr3"
    kinds = {n.path: n.kind for n in listing.nodes}
    assert kinds[""] == "group"
    assert kinds["A/1/0/1"] == "array"
    conventions = {n.path: n.conventions for n in listing.nodes}
    assert conventions[""] == ("OME-NGFF 0.5 plate",)
    assert conventions["A/1"] == ("OME-NGFF 0.5 well",)
    level = next(n for n in listing.nodes if n.path == "A/1/0/0")
    assert (level.shape, level.dtype, level.chunks, level.dimension_names) == (
        (2, 64, 64),
        "uint16",
        (1, 64, 64),
        ("c", "y", "x"),
    )
    text = listing.render()
    assert text.splitlines()[1].split() == ["node", "kind", "shape", "dtype", "chunks", "conventions"]
    assert "2×64×64" in text
    assert json.loads(json.dumps(listing.to_dict()))["nodes"][0]["path"] == "/"


# --- the ome-zarr-models layer ------------------------------------------------------------------------------


def test_ome_zarr_models_errors_become_issues_with_the_node_path() -> None:
    issues = model_issues({"multiscales": []}, "image", "0.4", "B/03/0")
    assert issues and all(i.path == "B/03/0" and i.rule == "ngff.models.image" for i in issues)
    assert "multiscales" in issues[0].message and issues[0].severity == "error"


def test_ome_zarr_models_is_not_allowed_to_be_stricter_than_the_specification() -> None:
    # The library declares rgba required; the specification says a colour MAY omit it.
    assert model_issues({"image-label": {"colors": [{"label-value": 1}]}}, "label", "0.4", "") == []
    # It also wants colors and properties to list the same label values; the specification does not.
    label = {"image-label": {"colors": [{"label-value": 1}], "properties": [{"label-value": 2, "area": 9}]}}
    assert model_issues(label, "label", "0.4", "") == []
    assert check_attributes(label, "label", version="0.4") == check_attributes(
        label, "label", version="0.4", crosscheck=False
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_crosscheck_agrees_on_conforming_hierarchies(tmp_path: Path, version: str) -> None:
    store = to_zarr(plate(version), tmp_path / "plate.zarr")
    assert check(store, crosscheck=True).issues == check(store).issues == []
