"""OME-NGFF 0.4 and 0.5 hierarchies: from one group down through what its metadata implies.

plate → row groups → wells → fields → multiscale levels; image → labels → label images; bioformats2raw
collection → series images. The attributes of each group are checked by :mod:`.ngff_attributes`; this
module adds the rules that need more than one document (arrays against axes, labels against their image,
wells against their plate, one version and one container format per hierarchy).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.jsonvalues import is_integral
from bioimage_pipeline.storage import join_key
from bioimage_pipeline.validation.detect import ngff_kind, ngff_namespace
from bioimage_pipeline.validation.issues import Findings, Issue
from bioimage_pipeline.validation.ngff_attributes import (
    ALNUM,
    LABEL_DTYPES,
    WELL_PATH,
    attribute_findings,
)
from bioimage_pipeline.validation.ngff_models import ModelCrossCheck
from bioimage_pipeline.validation.nodes import NodeMeta, NodeReader

# --- the hierarchy -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParentImage:
    """What a label image is compared with: its image's level count and full-resolution shape."""

    path: str
    levels: int
    shape: tuple[int, ...] | None


@dataclass(frozen=True)
class PlateContext:
    acquisition_ids: frozenset[int]
    acquisition_count: int
    max_fields: dict[int, int]
    field_count: int | None


class NgffChecker:
    """Walks an NGFF hierarchy from one group, following what the metadata implies (never listing all keys)."""

    def __init__(self, reader: NodeReader, out: Findings, *, crosscheck: bool = False) -> None:
        self.reader = reader
        self.out = out
        self.crosscheck = ModelCrossCheck() if crosscheck else None
        self._unreadable: set[str] = set()
        self._memo: dict[tuple[str, str | None, str], tuple[list[Issue], str | None]] = {}

    # nodes

    def node(self, path: str) -> NodeMeta | None:
        """The node, or None when absent or unreadable (the latter is reported here, once)."""
        try:
            return self.reader.node(path)
        except StoreError as exc:
            self._unreadable.add(path)
            self.out.error(path, "store.unreadable", f"{exc.path}: {exc.problem}")
            return None

    def attributes(
        self, attrs: dict[str, Any], kind: str, version: str | None, path: str
    ) -> tuple[dict[str, Any], str | None]:
        """:func:`attribute_findings` for one node, memoised by document: the fields of a plate usually
        share their metadata, and the verdict depends only on the document (the path is put back here)."""
        key = (kind, version, json.dumps(attrs, sort_keys=True, default=repr))
        known = self._memo.get(key)
        if known is None:
            scratch = Findings()
            _, resolved = attribute_findings(attrs, kind, scratch, version=version, crosscheck=self.crosscheck)
            known = self._memo[key] = (scratch.issues, resolved)
        for issue in known[0]:
            self.out.add(path, issue.rule, issue.severity, issue.message)
        return ngff_namespace(attrs)[0], known[1]

    def absent(self, path: str, rule: str, message: str) -> None:
        """Report a node the metadata promises but the store lacks (unless it exists but is unreadable)."""
        if path not in self._unreadable:
            self.out.error(path, rule, message)

    def children(self, path: str) -> list[str]:
        try:
            return self.reader.children(path)
        except StoreError as exc:
            self.out.error(path, "store.unreadable", f"{exc.path}: {exc.problem}")
            return []

    def _format_rule(self, node: NodeMeta, version: str) -> None:
        wanted = "zarr2" if version == "0.4" else "zarr3"
        if node.format != wanted:
            found = {"zarr2": "Zarr v2", "zarr3": "Zarr v3", "n5": "N5"}[node.format]
            out_of = "Zarr v2" if version == "0.4" else "Zarr v3"
            self.out.error(
                node.path, "ngff.zarr_format", f"OME-NGFF {version} is stored in {out_of}, but this node is {found}"
            )

    def _group_required(self, node: NodeMeta, what: str) -> bool:
        if node.kind != "group":
            self.out.error(node.path, "ngff.node.kind", f"{what} must be a group, but this node is an array")
            return False
        return True

    # dispatch

    def check(self, node: NodeMeta, kind: str | None = None) -> None:
        """Check ``node`` as ``kind`` (None: whatever it declares)."""
        kind = kind or ngff_kind(node.attrs)
        if kind is None:
            self.out.error(
                node.path,
                "ngff.missing",
                "no OME-NGFF metadata (multiscales, plate, well, labels, image-label or bioformats2raw.layout)",
            )
            return
        if not self._group_required(node, f"an OME-NGFF {kind}"):
            return
        if kind == "plate":
            self.plate(node)
        elif kind == "well":
            self.well(node, None, None)
        elif kind == "image" and "image-label" not in ngff_namespace(node.attrs)[0]:
            self.image(node, None)
        elif kind in ("image", "label"):
            # A label image checked on its own is still compared with the image two levels up.
            self.image(node, None, parent=self._enclosing_image(node.path, 2), as_label=True)
        elif kind == "labels":
            self.labels(node, None, self._enclosing_image(node.path, 1))
        elif kind == "bioformats2raw":
            self.bioformats2raw(node)
        elif kind == "series":
            self.attributes(node.attrs, "series", None, node.path)
        else:  # pragma: no cover - callers pass kinds from KINDS
            raise ValueError(kind)

    # groups

    def image(
        self, node: NodeMeta, version: str | None, *, parent: ParentImage | None = None, as_label: bool = False
    ) -> None:
        ngff, version = self.attributes(node.attrs, "image", version, node.path)
        if version is None:
            return
        is_label = as_label or "image-label" in ngff
        if "image-label" in ngff:
            self.attributes(node.attrs, "label", version, node.path)
        elif as_label:
            self.out.warn(
                node.path,
                "ngff.image_label.recommended",
                "this label image has no 'image-label' metadata (colors, source); it should",
            )
        self._format_rule(node, version)
        multiscales = ngff.get("multiscales")
        levels: list[NodeMeta | None] = []
        for i, ms in enumerate(multiscales if isinstance(multiscales, list) else []):
            if isinstance(ms, dict):
                found = self._levels(node, ms, i, version, is_label)
                if i == 0:
                    levels = found
        self._omero_channels(node, ngff, multiscales, levels)
        if is_label and parent is not None and isinstance(multiscales, list) and multiscales:
            self._compare_with_image(node, multiscales[0], levels, parent)
        if not is_label and "labels" in self.children(node.path):
            shape = levels[0].shape if levels and levels[0] is not None else None
            me = ParentImage(node.path, _level_count(ngff), shape)
            labels = self.node(join_key(node.path, "labels"))
            if labels is None:
                self.absent(
                    join_key(node.path, "labels"),
                    "ngff.labels.group.missing",
                    "the image has a 'labels' folder without group metadata",
                )
            else:
                self.labels(labels, version, me)

    def _enclosing_image(self, path: str, up: int) -> ParentImage | None:
        """The image ``up`` levels above ``path`` when there is one (labels live in ``<image>/labels/``)."""
        parts = path.split("/") if path else []
        if len(parts) < up:
            return None
        image = self.node("/".join(parts[: len(parts) - up]))
        if image is None or image.kind != "group" or ngff_kind(image.attrs) != "image":
            return None
        ngff, _ = ngff_namespace(image.attrs)
        multiscales = ngff.get("multiscales")
        first = multiscales[0] if isinstance(multiscales, list) and multiscales else None
        datasets = first.get("datasets") if isinstance(first, dict) else None
        level0 = (
            datasets[0].get("path")
            if isinstance(datasets, list) and datasets and isinstance(datasets[0], dict)
            else None
        )
        array = self.node(join_key(image.path, level0)) if isinstance(level0, str) else None
        shape = array.shape if array is not None and array.kind == "array" else None
        return ParentImage(image.path, _level_count(ngff), shape)

    def _levels(
        self, node: NodeMeta, ms: dict[str, Any], index: int, version: str, is_label: bool
    ) -> list[NodeMeta | None]:
        """Check each dataset's array against the multiscale's axes; returns the level arrays found."""
        datasets = ms.get("datasets")
        axes = ms.get("axes")
        names = [a.get("name") for a in axes if isinstance(a, dict)] if isinstance(axes, list) else None
        ndim = len(axes) if isinstance(axes, list) else None
        found: list[NodeMeta | None] = []
        for item in datasets if isinstance(datasets, list) else []:
            ds_path = item.get("path") if isinstance(item, dict) else None
            if not isinstance(ds_path, str):
                found.append(None)
                continue
            array_path = join_key(node.path, ds_path)
            array = self.node(array_path)
            found.append(self._level(array, array_path, ds_path, ndim, names, node, version, is_label))
        self._level_order(node, index, found, names)
        return found

    def _level(
        self,
        array: NodeMeta | None,
        array_path: str,
        ds_path: str,
        ndim: int | None,
        names: list[Any] | None,
        group: NodeMeta,
        version: str,
        is_label: bool,
    ) -> NodeMeta | None:
        if array is None:
            self.absent(
                array_path,
                "ngff.multiscales.datasets.array.missing",
                f"dataset {ds_path!r} is listed in the multiscales metadata but there is no array here",
            )
            return None
        if array.kind != "array":
            self.out.error(
                array_path, "ngff.multiscales.datasets.array.kind", f"dataset {ds_path!r} is a group, not an array"
            )
            return None
        if array.shape is None:
            for problem in array.problems:
                self.out.error(array_path, "zarr.array.metadata", problem)
            return None
        for problem in array.problems:
            self.out.warn(array_path, "zarr.array.metadata", problem)
        if array.format != group.format:
            self.out.error(array_path, "ngff.zarr_format", "the array is stored in another format than its group")
        if ndim is not None and len(array.shape) != ndim:
            self.out.error(
                array_path,
                "ngff.multiscales.datasets.array.ndim",
                f"the array has {len(array.shape)} dimensions but the multiscales metadata lists {ndim} axes",
            )
        elif version == "0.5" and array.format == "zarr3" and names and all(isinstance(n, str) for n in names):
            if array.dimension_names is None:
                self.out.error(
                    array_path,
                    "ngff.multiscales.datasets.array.dimension_names",
                    f"OME-Zarr 0.5 arrays must set dimension_names to the axis names {names}",
                )
            elif list(array.dimension_names) != names:
                self.out.error(
                    array_path,
                    "ngff.multiscales.datasets.array.dimension_names",
                    f"dimension_names {list(array.dimension_names)} do not match the axis names {names}",
                )
        if is_label and array.dtype not in LABEL_DTYPES:
            self.out.error(
                array_path,
                "ngff.image_label.dtype",
                f"label images hold integer values, but this level is {array.dtype}",
            )
        return array

    def _level_order(self, node: NodeMeta, index: int, found: list[NodeMeta | None], names: list[Any] | None) -> None:
        arrays = [a for a in found if a is not None and a.shape is not None]
        for prev, cur in itertools.pairwise(arrays):
            assert prev.shape is not None and cur.shape is not None
            if len(prev.shape) != len(cur.shape):
                if names is None:  # otherwise each level was already compared with the axes
                    self.out.error(
                        cur.path,
                        "ngff.multiscales.datasets.array.ndim",
                        f"all levels must have the same number of dimensions: {len(cur.shape)} here, "
                        f"{len(prev.shape)} in {prev.path}",
                    )
                continue
            larger = [j for j, (a, b) in enumerate(zip(prev.shape, cur.shape, strict=True)) if b > a]
            if larger:
                j = larger[0]
                axis = names[j] if names and j < len(names) else j
                self.out.error(
                    cur.path,
                    "ngff.multiscales.datasets.array.order",
                    f"levels must go from largest to smallest, but this level is larger than the previous one "
                    f"along axis {axis!r} ({cur.shape[j]} > {prev.shape[j]})",
                )
        dtypes = sorted({a.dtype for a in arrays if a.dtype})
        if len(dtypes) > 1:
            self.out.warn(
                node.path,
                "ngff.multiscales.datasets.array.dtype",
                f"the levels of multiscales[{index}] have different data types ({', '.join(dtypes)}); "
                "readers expect one",
            )

    def _omero_channels(
        self, node: NodeMeta, ngff: dict[str, Any], multiscales: Any, levels: list[NodeMeta | None]
    ) -> None:
        omero = ngff.get("omero")
        if not isinstance(omero, dict) or not isinstance(omero.get("channels"), list):
            return
        if not isinstance(multiscales, list) or not multiscales or not isinstance(multiscales[0], dict):
            return
        axes = multiscales[0].get("axes")
        if not isinstance(axes, list):
            return
        channel_axes = [j for j, a in enumerate(axes) if isinstance(a, dict) and a.get("type") == "channel"]
        first = levels[0] if levels else None
        if len(channel_axes) != 1 or first is None or first.shape is None or len(first.shape) != len(axes):
            return
        size = first.shape[channel_axes[0]]
        if len(omero["channels"]) != size:
            self.out.warn(
                node.path,
                "ngff.omero.channels.count",
                f"omero lists {len(omero['channels'])} channels but the channel axis has {size}",
            )

    def _compare_with_image(self, node: NodeMeta, ms: Any, levels: list[NodeMeta | None], parent: ParentImage) -> None:
        datasets = ms.get("datasets") if isinstance(ms, dict) else None
        if isinstance(datasets, list) and parent.levels and len(datasets) != parent.levels:
            self.out.error(
                node.path,
                "ngff.image_label.levels",
                f"the label image has {len(datasets)} levels but its image has {parent.levels}; they must match",
            )
        first = levels[0] if levels else None
        if first is None or first.shape is None or parent.shape is None or len(first.shape) != len(parent.shape):
            return
        odd = [j for j, (a, b) in enumerate(zip(first.shape, parent.shape, strict=True)) if a not in (b, 1)]
        if odd:
            self.out.warn(
                node.path,
                "ngff.image_label.shape",
                f"label shape {list(first.shape)} should equal the image shape {list(parent.shape)} "
                "(or be 1) in every dimension",
            )

    def labels(self, node: NodeMeta, version: str | None, parent: ParentImage | None) -> None:
        ngff, version = self.attributes(node.attrs, "labels", version, node.path)
        if version is None:
            return
        self._format_rule(node, version)
        listed = ngff.get("labels")
        listed = [x for x in listed if isinstance(x, str)] if isinstance(listed, list) else []
        for name in listed:
            label_path = join_key(node.path, name)
            label = self.node(label_path)
            if label is None:
                self.absent(
                    label_path, "ngff.labels.path.missing", f"label {name!r} is listed but there is no group here"
                )
            elif self._group_required(label, "a label image"):
                self.image(label, version, parent=parent, as_label=True)
        if version == "0.5":
            for name in self.children(node.path):
                if name in listed:
                    continue
                child = self.node(join_key(node.path, name))
                if child is not None and child.kind == "group" and ngff_kind(child.attrs) == "image":
                    self.out.warn(
                        child.path,
                        "ngff.labels.unlisted",
                        f"label image {name!r} is not listed in the labels group's 'labels'; it should be",
                    )

    def plate(self, node: NodeMeta, version: str | None = None) -> None:
        ngff, version = self.attributes(node.attrs, "plate", version, node.path)
        if version is None:
            return
        self._format_rule(node, version)
        plate = ngff.get("plate")
        if not isinstance(plate, dict):
            return
        context = _plate_context(plate)
        wells = plate.get("wells")
        seen_rows: set[str] = set()
        seen_wells: set[str] = set()
        for well in wells if isinstance(wells, list) else []:
            well_path = well.get("path") if isinstance(well, dict) else None
            if not isinstance(well_path, str) or not WELL_PATH.match(well_path) or well_path in seen_wells:
                continue
            seen_wells.add(well_path)
            row = well_path.split("/")[0]
            if row not in seen_rows:
                seen_rows.add(row)
                row_node = self.node(join_key(node.path, row))
                if row_node is None or row_node.implicit:
                    self.out.error(
                        join_key(node.path, row),
                        "ngff.plate.row.missing",
                        f"row {row!r} has wells but no group metadata; plate rows must be groups",
                    )
            target = join_key(node.path, well_path)
            well_node = self.node(target)
            if well_node is None:
                self.absent(
                    target, "ngff.plate.well.missing", f"well {well_path!r} is listed in the plate but has no group"
                )
            elif self._group_required(well_node, "a well"):
                self.well(well_node, version, context)

    def well(self, node: NodeMeta, version: str | None, plate: PlateContext | None) -> None:
        ngff, version = self.attributes(node.attrs, "well", version, node.path)
        if version is None:
            return
        self._format_rule(node, version)
        well = ngff.get("well")
        images = well.get("images") if isinstance(well, dict) else None
        images = [i for i in images if isinstance(i, dict)] if isinstance(images, list) else []
        if plate is not None:
            self._well_in_plate(node, images, plate)
        seen: set[str] = set()
        for image in images:
            image_path = image.get("path")
            if not isinstance(image_path, str) or not ALNUM.match(image_path) or image_path in seen:
                continue
            seen.add(image_path)
            target = join_key(node.path, image_path)
            field_node = self.node(target)
            if field_node is None:
                self.absent(
                    target, "ngff.well.images.group.missing", f"field {image_path!r} is listed but has no group"
                )
            elif self._group_required(field_node, "a field of view"):
                self.image(field_node, version)

    def _well_in_plate(self, node: NodeMeta, images: list[dict[str, Any]], plate: PlateContext) -> None:
        per_acquisition: Counter[int] = Counter()
        for k, image in enumerate(images):
            acquisition = image.get("acquisition")
            if acquisition is None:
                if plate.acquisition_count > 1:
                    self.out.error(
                        node.path,
                        "ngff.well.images.acquisition.missing",
                        f"well.images[{k}] names no acquisition, but the plate has {plate.acquisition_count}",
                    )
                continue
            if not is_integral(acquisition):
                continue
            per_acquisition[int(acquisition)] += 1
            if not plate.acquisition_ids:
                self.out.warn(
                    node.path,
                    "ngff.well.images.acquisition.undeclared",
                    f"well.images[{k}] refers to acquisition {acquisition}, but the plate declares no acquisitions",
                )
            elif int(acquisition) not in plate.acquisition_ids:
                self.out.error(
                    node.path,
                    "ngff.well.images.acquisition.unknown",
                    f"well.images[{k}] refers to acquisition {acquisition}, which the plate does not declare",
                )
        if plate.field_count is not None and len(images) > plate.field_count:
            self.out.error(
                node.path,
                "ngff.plate.field_count.exceeded",
                f"the well has {len(images)} fields but the plate's field_count is {plate.field_count}",
            )
        for acquisition, count in per_acquisition.items():
            limit = plate.max_fields.get(acquisition)
            if limit is not None and count > limit:
                self.out.error(
                    node.path,
                    "ngff.plate.acquisitions.maximumfieldcount.exceeded",
                    f"the well has {count} fields of acquisition {acquisition}, more than its maximumfieldcount "
                    f"{limit}",
                )

    def bioformats2raw(self, node: NodeMeta) -> None:
        ngff, version = self.attributes(node.attrs, "bioformats2raw", None, node.path)
        if version is None:
            return
        self._format_rule(node, version)
        if "plate" in ngff:
            # A plate takes precedence over the series layout.
            self.plate(node, version)
            return
        ome_path = join_key(node.path, "OME")
        ome = self.node(ome_path)
        series: list[str] | None = None
        if ome is not None:
            if ome.kind != "group":
                self.out.error(ome_path, "ngff.node.kind", "the bioformats2raw 'OME' node must be a group")
            elif "series" in ngff_namespace(ome.attrs)[0]:
                ome_ngff, _ = self.attributes(ome.attrs, "series", version, ome_path)
                raw = ome_ngff.get("series")
                series = [s for s in raw if isinstance(s, str)] if isinstance(raw, list) else None
        if not self.reader.store.exists(join_key(node.path, "OME", "METADATA.ome.xml")):
            self.out.warn(
                node.path,
                "ngff.bioformats2raw.ome_xml.recommended",
                "there is no OME/METADATA.ome.xml describing the images; there should be",
            )
        if series is not None:
            for name in series:
                target = join_key(node.path, name)
                image = self.node(target)
                if image is None:
                    self.absent(target, "ngff.bioformats2raw.series.group.missing", f"series {name!r} has no group")
                elif self._group_required(image, "a series image"):
                    self.image(image, version)
            return
        index = 0
        while (image := self.node(join_key(node.path, str(index)))) is not None:
            if self._group_required(image, "a series image"):
                self.image(image, version)
            index += 1
        if index == 0:
            self.out.error(
                join_key(node.path, "0"),
                "ngff.bioformats2raw.series.group.missing",
                "without a 'series' list, images must be the groups 0, 1, 2, ...; there is no group '0'",
            )


def _level_count(ngff: dict[str, Any]) -> int:
    multiscales = ngff.get("multiscales")
    first = multiscales[0] if isinstance(multiscales, list) and multiscales else None
    datasets = first.get("datasets") if isinstance(first, dict) else None
    return len(datasets) if isinstance(datasets, list) else 0


def _plate_context(plate: dict[str, Any]) -> PlateContext:
    acquisitions = plate.get("acquisitions")
    acquisitions = [a for a in acquisitions if isinstance(a, dict)] if isinstance(acquisitions, list) else []
    ids = frozenset(int(a["id"]) for a in acquisitions if is_integral(a.get("id")))
    max_fields = {
        int(a["id"]): int(a["maximumfieldcount"])
        for a in acquisitions
        if is_integral(a.get("id")) and is_integral(a.get("maximumfieldcount"))
    }
    field_count = plate.get("field_count")
    fields = int(field_count) if is_integral(field_count) and field_count > 0 else None
    return PlateContext(ids, len(acquisitions), max_fields, fields)
