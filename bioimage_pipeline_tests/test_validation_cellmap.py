"""CellMap conventions on hierarchies built in the test, over N5, Zarr v2 and Zarr v3: valid, then each rule
broken once."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bioimage_pipeline.validation import ValidationReport, check
from bioimage_pipeline.validation.build import (
    ArrayStub,
    GroupSpec,
    annotation_class,
    annotation_crop,
    cosem_multiscale,
    neuroglancer_multiscale,
    to_n5,
    to_zarr,
)

FORMATS = ["n5", 2, 3]
SHAPES = [(16, 64, 64), (8, 32, 32), (4, 16, 16)]
SCALES = [[8.0, 4.0, 4.0], [16.0, 8.0, 8.0], [32.0, 16.0, 16.0]]
TRANSLATIONS = [[0.0, 0.0, 0.0], [4.0, 2.0, 2.0], [12.0, 6.0, 6.0]]


def write(spec: GroupSpec, where: Path, fmt: str | int) -> Path:
    if fmt == "n5":
        return to_n5(spec, where.with_suffix(".n5"))
    return to_zarr(spec, where.with_suffix(".zarr"), zarr_format=fmt)


def _doc(node: Path) -> tuple[Path, Callable[[dict[str, Any]], dict[str, Any]]]:
    """The document holding a node's attributes, and how to reach them inside it."""
    if (node / "attributes.json").exists():
        return node / "attributes.json", lambda d: d
    if (node / "zarr.json").exists():
        return node / "zarr.json", lambda d: d.setdefault("attributes", {})
    if not (node / ".zattrs").exists():
        (node / ".zattrs").write_text("{}")
    return node / ".zattrs", lambda d: d


def edit(node: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    path, attrs = _doc(node)
    doc = json.loads(path.read_text())
    change(attrs(doc))
    path.write_text(json.dumps(doc))


def set_shape(node: Path, shape: list[int]) -> None:
    """Rewrite an array's shape (and chunks) whatever the format; N5 lists dimensions fastest first."""
    if (node / "attributes.json").exists():
        path, doc = node / "attributes.json", json.loads((node / "attributes.json").read_text())
        doc["dimensions"], doc["blockSize"] = shape[::-1], shape[::-1]
    elif (node / "zarr.json").exists():
        path, doc = node / "zarr.json", json.loads((node / "zarr.json").read_text())
        doc["shape"] = shape
        doc["chunk_grid"]["configuration"]["chunk_shape"] = shape
    else:
        path, doc = node / ".zarray", json.loads((node / ".zarray").read_text())
        doc["shape"], doc["chunks"] = shape, shape
    path.write_text(json.dumps(doc))


def make_group(node: Path) -> None:
    shutil.rmtree(node)
    node.mkdir()
    if (node.parent / "attributes.json").exists() or node.parent.suffix == ".n5":
        (node / "attributes.json").write_text("{}")
    elif (node.parent / "zarr.json").exists():
        (node / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    else:
        (node / ".zgroup").write_text('{"zarr_format": 2}')


def errors(report: ValidationReport) -> set[tuple[str, str]]:
    return {(i.path, i.rule) for i in report.issues if i.severity == "error"}


def warnings(report: ValidationReport) -> set[tuple[str, str]]:
    return {(i.path, i.rule) for i in report.issues if i.severity == "warning"}


def cosem(tmp_path: Path, fmt: str | int) -> Path:
    arrays = [ArrayStub(s, "uint8") for s in SHAPES]
    spec = cosem_multiscale(arrays, axes="zyx", units=["nm"] * 3, scales=SCALES, translations=TRANSLATIONS, name="raw")
    return write(spec, tmp_path / "raw", fmt)


def neuroglancer(tmp_path: Path, fmt: str | int) -> Path:
    arrays = [ArrayStub(s, "uint16") for s in SHAPES]
    return write(neuroglancer_multiscale(arrays, axes="zyx", units=["nm"] * 3, scales=SCALES), tmp_path / "ng", fmt)


# --- conforming ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_built_cosem_group_is_valid_for_both_multiscale_models(tmp_path: Path, fmt: str | int) -> None:
    store = cosem(tmp_path, fmt)
    report = check(store)
    assert report.models == ["cellmap.cosem"]
    assert report.issues == []
    assert check(store, "cellmap.neuroglancer_n5").issues == []
    level = check(store / "s1")
    assert level.models == ["cellmap.cosem"] and level.issues == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_built_neuroglancer_group_is_valid(tmp_path: Path, fmt: str | int) -> None:
    store = neuroglancer(tmp_path, fmt)
    report = check(store)
    assert report.models == ["cellmap.neuroglancer_n5"]
    assert report.issues == []
    # Neuroglancer metadata is F order: the C-order z, y, x of the arrays appear reversed.
    doc = json.loads(
        next(p for p in (store / n for n in ("attributes.json", ".zattrs", "zarr.json")) if p.exists()).read_text()
    )
    attrs = doc.get("attributes", doc)
    assert attrs["axes"] == ["x", "y", "z"] and attrs["pixelResolution"]["dimensions"] == [4.0, 4.0, 8.0]
    # A plain neuroglancer group is not a COSEM one.
    assert ("/", "cellmap.cosem.multiscales") in errors(check(store, "cellmap.cosem"))


# --- each multiscale rule broken once ------------------------------------------------------------------------


def _group(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    return lambda store: edit(store, change)


def _level(name: str, change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    return lambda store: edit(store / name, change)


COSEM_CASES = {
    "axes not a list": (_group(lambda a: a.update(axes="xyz")), {("/", "cellmap.neuroglancer_n5.axes")}, set()),
    "units too short": (
        _group(lambda a: a.update(units=["nm", "nm"])),
        {("/", "cellmap.neuroglancer_n5.units")},
        set(),
    ),
    "units disagree with pixelResolution": (
        _group(lambda a: a.update(units=["nm", "nm", "um"])),
        {("/", "cellmap.neuroglancer_n5.units.consistent")},
        set(),
    ),
    "scales entry of the wrong length": (
        _group(lambda a: a["scales"].__setitem__(1, [2, 2])),
        {("/", "cellmap.neuroglancer_n5.scales")},
        set(),
    ),
    "first scale not all ones": (
        _group(lambda a: a["scales"].__setitem__(0, [1, 1, 2])),
        {("/", "cellmap.neuroglancer_n5.scales")},
        {("s0", "cellmap.neuroglancer_n5.level.shape"), ("s0", "cellmap.neuroglancer_n5.level.resolution")},
    ),
    "pixelResolution as a bare list": (
        _group(lambda a: a.update(pixelResolution=[4.0, 4.0, 8.0])),
        {("/", "cellmap.neuroglancer_n5.pixel_resolution")},
        set(),
    ),
    "two multiscales entries": (
        _group(lambda a: a["multiscales"].append(a["multiscales"][0])),
        {("/", "cellmap.cosem.multiscales")},
        set(),
    ),
    "group transform differs from the array's": (
        _group(lambda a: a["multiscales"][0]["datasets"][1]["transform"].update(translate=[0.0, 0.0, 0.0])),
        {("s1", "cellmap.cosem.dataset.transform")},
        set(),
    ),
    "array unit differs from its transform": (
        _level("s1", lambda a: a["pixelResolution"].update(unit="um")),
        {("s1", "cellmap.cosem.pixel_resolution.consistent")},
        set(),
    ),
    "array pixelResolution is not the reversed scale": (
        _level("s2", lambda a: a["pixelResolution"].update(dimensions=[32.0, 16.0, 16.0])),
        {("s2", "cellmap.cosem.pixel_resolution.consistent")},
        {("s2", "cellmap.neuroglancer_n5.level.resolution")},
    ),
    "array transform lacks translate": (
        _level("s2", lambda a: a["transform"].pop("translate")),
        {("s2", "cellmap.cosem.transform")},
        set(),
    ),
    "array transform order unknown": (
        _level("s0", lambda a: a["transform"].update(order="X")),
        {("s0", "cellmap.cosem.transform")},
        set(),
    ),
    "array without pixelResolution": (
        _level("s1", lambda a: a.pop("pixelResolution")),
        {("s1", "cellmap.cosem.pixel_resolution")},
        set(),
    ),
    "group axes in C order": (
        _group(lambda a: a.update(axes=["z", "y", "x"])),
        {(f"s{i}", "cellmap.cosem.axes.consistent") for i in range(3)},
        set(),
    ),
    "level missing": (lambda store: shutil.rmtree(store / "s2"), {("s2", "cellmap.multiscale.array.missing")}, set()),
    "level is a group": (lambda store: make_group(store / "s2"), {("s2", "cellmap.multiscale.array.kind")}, set()),
    "level of the wrong dimensionality": (
        lambda store: set_shape(store / "s2", [16, 16]),
        {("s2", "cellmap.cosem.transform.ndim"), ("s2", "cellmap.neuroglancer_n5.level.ndim")},
        set(),
    ),
    "level not downsampled by its scale": (
        lambda store: set_shape(store / "s1", [8, 32, 20]),
        set(),
        {("s1", "cellmap.neuroglancer_n5.level.shape")},
    ),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(COSEM_CASES))
def test_cosem_rule_broken_once(tmp_path: Path, fmt: str | int, case: str) -> None:
    change, expected_errors, expected_warnings = COSEM_CASES[case]
    store = cosem(tmp_path, fmt)
    change(store)
    report = check(store)
    assert report.models == ["cellmap.cosem"]
    assert errors(report) == expected_errors, report.issues
    assert warnings(report) == expected_warnings, report.issues


@pytest.mark.parametrize("fmt", FORMATS)
def test_neuroglancer_level_rules(tmp_path: Path, fmt: str | int) -> None:
    store = neuroglancer(tmp_path, fmt)
    edit(store / "s1", lambda a: a["pixelResolution"].update(dimensions=[4.0, 4.0, 8.0]))
    edit(store / "s2", lambda a: a.pop("pixelResolution"))
    report = check(store)
    assert errors(report) == {("s2", "cellmap.neuroglancer_n5.pixel_resolution")}
    assert warnings(report) == {("s1", "cellmap.neuroglancer_n5.level.resolution")}
    lone = check(store / "s0")
    assert lone.models == ["cellmap.neuroglancer_n5"] and lone.issues == []
    edit(store / "s0", lambda a: a["pixelResolution"]["dimensions"].pop())
    assert errors(check(store / "s0")) == {("s0", "cellmap.neuroglancer_n5.pixel_resolution")}


# --- annotation crops --------------------------------------------------------------------------------------

SEMANTIC = {"type": "semantic_segmentation", "encoding": {"absent": 0, "present": 1, "unknown": 255}}
INSTANCE = {"type": "instance_segmentation", "encoding": {"absent": 0, "unknown": 255}}


def crop(tmp_path: Path, fmt: int, dtype: str = "uint8") -> Path:
    version = "0.5" if fmt == 3 else "0.4"
    rng = np.random.default_rng(0)
    data = rng.choice(np.array([0, 1, 255], dtype=dtype), size=(8, 16, 16))
    classes = {
        "mito": annotation_class(
            [data, data[::2, ::2, ::2]],
            class_name="mito",
            annotation_type=SEMANTIC,
            axes="zyx",
            units=["nanometer"] * 3,
            scales=SCALES[:2],
            version=version,
        ),
        "cell": annotation_class(
            [ArrayStub((8, 16, 16), dtype), ArrayStub((4, 8, 8), dtype)],
            class_name="cell",
            annotation_type=INSTANCE,
            axes="zyx",
            units=["nanometer"] * 3,
            scales=SCALES[:2],
            version=version,
        ),
    }
    spec = annotation_crop(
        classes, name="crop 7", created_by=["annotator"], created_with=["paintera"], start_date="2024-03-01"
    )
    return to_zarr(spec, tmp_path / "crop.zarr", zarr_format=fmt)


@pytest.mark.parametrize("fmt", [2, 3])
def test_built_crop_is_valid(tmp_path: Path, fmt: int) -> None:
    store = crop(tmp_path, fmt)
    report = check(store)
    assert report.models == ["cellmap.annotation"]
    assert report.issues == []
    assert check(store / "mito").models == ["ngff.image", "cellmap.annotation"]
    assert check(store / "mito").issues == []
    # complement counts were computed from the data: they add up to the number of elements.
    counts = json.loads(next((store / "mito" / "0").glob("*.json*")).read_text()) if fmt == 3 else None
    array_attrs = counts["attributes"] if counts else json.loads((store / "mito" / "0" / ".zattrs").read_text())
    assert sum(array_attrs["cellmap"]["annotation"]["complement_counts"].values()) == 8 * 16 * 16


def _ann(change: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    return lambda attrs: change(attrs["cellmap"]["annotation"])


def _drop_ngff(attrs: dict[str, Any]) -> None:
    attrs.pop("multiscales", None)
    attrs.pop("ome", None)


ANNOTATION_CASES: dict[str, tuple[str, Callable[[dict[str, Any]], Any], set, set]] = {
    "crop version": ("", _ann(lambda a: a.update(version="0.1.0")), {("/", "cellmap.annotation.crop.version")}, set()),
    "crop field missing": ("", _ann(lambda a: a.pop("created_with")), {("/", "cellmap.annotation.crop.fields")}, set()),
    "crop date": ("", _ann(lambda a: a.update(end_date="2024-13-01")), {("/", "cellmap.annotation.crop.dates")}, set()),
    "crop repeats a class": (
        "",
        _ann(lambda a: a["class_names"].append("mito")),
        {("/", "cellmap.annotation.crop.class_names")},
        set(),
    ),
    "crop lists an absent class": (
        "",
        _ann(lambda a: a["class_names"].append("nucleus")),
        {("nucleus", "cellmap.annotation.class.missing")},
        set(),
    ),
    "class annotation type unknown": (
        "mito",
        _ann(lambda a: a["annotation_type"].update(type="panoptic")),
        {("mito", "cellmap.annotation.annotation_type")},
        set(),
    ),
    "instance encoding with present": (
        "cell",
        _ann(lambda a: a["annotation_type"]["encoding"].update(present=1)),
        {("cell", "cellmap.annotation.annotation_type")},
        set(),
    ),
    "class with an extra key": (
        "mito",
        _ann(lambda a: a.update(colour="red")),
        {("mito", "cellmap.annotation.class.attributes")},
        set(),
    ),
    "class not an OME-NGFF image": ("cell", _drop_ngff, set(), {("cell", "cellmap.annotation.class.multiscales")}),
    "array class name differs from its group": (
        "mito/1",
        _ann(lambda a: a.update(class_name="mitochondria")),
        set(),
        {("mito/1", "cellmap.annotation.array.class_name")},
    ),
    "array annotation type differs from its group": (
        "mito/1",
        _ann(lambda a: a["annotation_type"]["encoding"].update(unknown=254)),
        set(),
        {("mito/1", "cellmap.annotation.array.annotation_type")},
    ),
    "array without complement counts": (
        "cell/0",
        _ann(lambda a: a.pop("complement_counts")),
        {("cell/0", "cellmap.annotation.array.attributes")},
        set(),
    ),
    "complement count key outside the encoding": (
        "cell/0",
        _ann(lambda a: a.update(complement_counts={"present": 3})),
        {("cell/0", "cellmap.annotation.array.complement_counts")},
        set(),
    ),
    "complement counts above the element count": (
        "mito/1",
        _ann(lambda a: a.update(complement_counts={"absent": 200, "unknown": 100})),
        {("mito/1", "cellmap.annotation.array.complement_counts")},
        set(),
    ),
}


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("case", sorted(ANNOTATION_CASES))
def test_annotation_rule_broken_once(tmp_path: Path, fmt: int, case: str) -> None:
    node, change, expected_errors, expected_warnings = ANNOTATION_CASES[case]
    store = crop(tmp_path, fmt)
    edit(store / node if node else store, change)
    report = check(store)
    assert errors(report) == expected_errors, report.issues
    assert warnings(report) == expected_warnings, report.issues


@pytest.mark.parametrize("fmt", [2, 3])
def test_annotation_structure_rules(tmp_path: Path, fmt: int) -> None:
    store = crop(tmp_path, fmt)
    shutil.copytree(store / "mito" / "1", store / "mito" / "extra")
    make_group(store / "mito" / "extra")
    edit(store / "cell", lambda a: a["cellmap"]["annotation"].update(class_name="cells"))
    for level in ("0", "1"):
        edit(store / "cell" / level, lambda a: a["cellmap"]["annotation"].update(class_name="cells"))
    report = check(store)
    assert errors(report) == {("mito/extra", "cellmap.annotation.class.member")}
    assert warnings(report) == {("cell", "cellmap.annotation.class.name")}


def test_float_annotations_warn(tmp_path: Path) -> None:
    store = crop(tmp_path, 2, dtype="float32")
    report = check(store)
    assert report.valid
    assert warnings(report) == {
        (f"{c}/{level}", "cellmap.annotation.array.dtype") for c in ("mito", "cell") for level in "01"
    }


def test_annotation_model_on_each_node_kind(tmp_path: Path) -> None:
    store = crop(tmp_path, 2)
    assert check(store / "mito" / "0", "cellmap.annotation").issues == []
    assert check(store / "mito", "cellmap.annotation").issues == []
    plain = to_zarr(GroupSpec({"foo": 1}), tmp_path / "plain.zarr", zarr_format=2)
    assert errors(check(plain, "cellmap.annotation")) == {("/", "cellmap.annotation.missing")}
