"""``check``: validate one node (and what its convention implies below it) against a named model."""

from __future__ import annotations

from pathlib import Path

from bioimage_pipeline.errors import UsageError
from bioimage_pipeline.validation.cellmap import check_cellmap
from bioimage_pipeline.validation.detect import MODELS, declared_models, ngff_namespace
from bioimage_pipeline.validation.issues import Findings, ValidationReport
from bioimage_pipeline.validation.ngff import NgffChecker
from bioimage_pipeline.validation.nodes import NodeMeta, NodeReader, open_node

_NGFF_KIND = {"ngff": None, "ngff.image": "image", "ngff.plate": "plate", "ngff.well": "well"}


def check(url: str | Path, model: str | None = None, *, crosscheck: bool = False) -> ValidationReport:
    """Validate the node at ``url`` against ``model`` (one of :data:`MODELS`), or against every convention
    it declares when ``model`` is None.

    Raises :class:`~bioimage_pipeline.errors.UsageError` for an unknown model name and
    :class:`~bioimage_pipeline.errors.StoreError` when the node itself cannot be read. Problems further
    down the hierarchy are reported as issues.

    ``crosscheck`` also asks ome-zarr-models about every OME-NGFF document our own rules pass. It is off by
    default because the library spends ~2 ms per multiscale dataset entry: a 96-well plate whose fields
    each carry their own metadata then takes seconds instead of under one.
    """
    if model is not None and model not in MODELS:
        raise UsageError(f"unknown model {model!r}; valid models are: {', '.join(MODELS)}")
    opened = open_node(url)
    node = opened.reader.node(opened.path)
    assert node is not None  # open_node only returns existing nodes
    out = Findings()
    models = [model] if model is not None else declared_models(node)
    if not models:
        out.error(
            node.path,
            "conventions.none",
            "the node declares no convention this validator knows: OME-NGFF (multiscales, plate, well, labels, "
            "image-label, bioformats2raw.layout) or CellMap (COSEM multiscales, Neuroglancer scales and "
            "pixelResolution, cellmap.annotation)",
        )
    for name in models:
        run_model(opened.reader, node, name, out, crosscheck=crosscheck)
    return ValidationReport(str(url), models, out.issues)


def run_model(reader: NodeReader, node: NodeMeta, model: str, out: Findings, *, crosscheck: bool = False) -> None:
    """Check one node against one model, writing into ``out``."""
    if model.startswith("cellmap."):
        check_cellmap(reader, node, model, out, crosscheck=crosscheck)
        return
    checker = NgffChecker(reader, out, crosscheck=crosscheck)
    if model == "ngff.labels":
        ngff, _ = ngff_namespace(node.attrs)
        if "labels" in ngff:
            checker.check(node, "labels")
        elif "image-label" in ngff:
            checker.check(node, "label")
        else:
            out.error(
                node.path,
                "ngff.labels.missing",
                "neither a labels group (a 'labels' list) nor a label image ('image-label' metadata)",
            )
        return
    checker.check(node, _NGFF_KIND[model])
