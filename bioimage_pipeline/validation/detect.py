"""Which conventions a node declares, judged from its attributes alone.

OME-NGFF and COSEM both use a ``multiscales`` key; they are told apart by what the entries hold (NGFF:
``axes`` and ``coordinateTransformations``; COSEM: a ``transform`` per dataset).
"""

from __future__ import annotations

from typing import Any

from bioimage_pipeline.formats.ngff import ngff_attrs
from bioimage_pipeline.validation.models import MODELS
from bioimage_pipeline.validation.nodes import NodeMeta

__all__ = ["MODELS", "declared_models", "is_cosem_multiscales", "ngff_namespace"]


def ngff_namespace(attrs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The dictionary holding the NGFF keys (``attrs["ome"]`` for 0.5) and whether it was namespaced."""
    ngff, _ = ngff_attrs(attrs)
    return ngff, ngff is not attrs


def is_cosem_multiscales(attrs: dict[str, Any]) -> bool:
    entries = attrs.get("multiscales")
    if not isinstance(entries, list):
        return False
    for entry in entries:
        if not isinstance(entry, dict) or "axes" in entry or "coordinateTransformations" in entry:
            return False
        datasets = entry.get("datasets")
        if isinstance(datasets, list) and any(isinstance(d, dict) and "transform" in d for d in datasets):
            return True
    return False


def is_cosem_array(attrs: dict[str, Any]) -> bool:
    transform = attrs.get("transform")
    return isinstance(transform, dict) and any(k in transform for k in ("scale", "axes", "translate", "units"))


def is_neuroglancer_group(attrs: dict[str, Any]) -> bool:
    return "scales" in attrs and any(k in attrs for k in ("pixelResolution", "axes", "units"))


def annotation_attrs(attrs: dict[str, Any]) -> dict[str, Any] | None:
    cellmap = attrs.get("cellmap")
    annotation = cellmap.get("annotation") if isinstance(cellmap, dict) else None
    return annotation if isinstance(annotation, dict) else None


def ngff_kind(attrs: dict[str, Any]) -> str | None:
    """What an NGFF group declares itself to be (an ``ngff.KINDS`` entry), or None."""
    ngff, namespaced = ngff_namespace(attrs)
    if "plate" in ngff:
        return "plate"
    if "bioformats2raw.layout" in ngff:
        return "bioformats2raw"
    if "well" in ngff:
        return "well"
    if ("multiscales" in ngff and not is_cosem_multiscales(ngff)) or "image-label" in ngff:
        return "image"
    if "labels" in ngff:
        return "labels"
    if "series" in ngff and (namespaced or isinstance(ngff.get("series"), list)):
        return "series"
    return None


def ngff_model(attrs: dict[str, Any]) -> str | None:
    """The ``ngff.*`` model name a group declares (``ngff`` alone for bioformats2raw collections)."""
    kind = ngff_kind(attrs)
    if kind is None:
        return None
    if kind == "image":
        ngff, _ = ngff_namespace(attrs)
        return "ngff.labels" if "image-label" in ngff else "ngff.image"
    return {"plate": "ngff.plate", "well": "ngff.well", "labels": "ngff.labels"}.get(kind, "ngff")


def declared_models(node: NodeMeta) -> list[str]:
    """Every model (from :data:`MODELS`) whose metadata the node carries."""
    attrs = node.attrs
    found = []
    if node.kind == "group":
        model = ngff_model(attrs)
        if model is not None:
            found.append(model)
        if is_cosem_multiscales(attrs):
            found.append("cellmap.cosem")
        elif is_neuroglancer_group(attrs):
            found.append("cellmap.neuroglancer_n5")
    elif is_cosem_array(attrs):
        found.append("cellmap.cosem")
    elif "pixelResolution" in attrs:
        found.append("cellmap.neuroglancer_n5")
    if annotation_attrs(attrs) is not None:
        found.append("cellmap.annotation")
    return found


def describe(node: NodeMeta) -> list[str]:
    """Human-readable convention labels for ``inspect`` (with the NGFF version where declared)."""
    labels = []
    kind = ngff_kind(node.attrs) if node.kind == "group" else None
    if kind is not None:
        ngff, namespaced = ngff_namespace(node.attrs)
        version = ngff.get("version") if namespaced else _legacy_version(ngff, kind)
        name = {"image": "image", "labels": "labels group", "series": "bioformats2raw series"}.get(kind, kind)
        if kind == "image" and "image-label" in ngff:
            name = "label image"
        labels.append(f"OME-NGFF {version} {name}" if version else f"OME-NGFF {name}")
    for model in declared_models(node):
        if model.startswith("cellmap."):
            labels.append(model)
    return labels


def _legacy_version(ngff: dict[str, Any], kind: str) -> str | None:
    if kind == "image":
        entries = ngff.get("multiscales")
        first = entries[0] if isinstance(entries, list) and entries else None
        return first.get("version") if isinstance(first, dict) else None
    section = ngff.get({"plate": "plate", "well": "well"}.get(kind, ""))
    return section.get("version") if isinstance(section, dict) else None
