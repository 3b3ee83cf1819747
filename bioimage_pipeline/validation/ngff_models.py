"""ome-zarr-models as a second opinion on OME-NGFF attributes, its pydantic errors turned into Issues.

Only the attribute models are used: its group models open arrays through zarr-python, which a metadata
check must not do. Where the library is known to be stricter than the specification, its input is
adapted first (see ``_adapt``) so that it cannot report a valid document as broken.
"""

from __future__ import annotations

import importlib
import json
import warnings
from typing import Any

from pydantic import BaseModel, ValidationError

from bioimage_pipeline.validation.issues import ERROR, Issue, display_path

#: ome-zarr-models class of each metadata kind, as (module, class) inside the version's package.
_MODELS = {
    "image": ("image", "ImageAttrs"),
    "label": ("image_label_types", "Label"),
    "plate": ("plate", "Plate"),
    "well": ("well_types", "WellMeta"),
    "labels": ("labels", "LabelsAttrs"),
    "bioformats2raw": ("bioformats2raw", "BioFormats2RawAttrs"),
}
_PACKAGES = {"0.4": "ome_zarr_models.v04", "0.5": "ome_zarr_models.v05"}


def _model(kind: str, version: str) -> type[BaseModel] | None:
    # Imported on first use: the library pulls in zarr-python, which the rest of a check never needs.
    package = _PACKAGES.get(version)
    if package is None or kind not in _MODELS:
        return None
    module, name = _MODELS[kind]
    return getattr(importlib.import_module(f"{package}.{module}"), name)


_SECTION = {"label": "image-label", "plate": "plate", "well": "well"}


def _adapt(kind: str, data: Any) -> Any:
    if kind != "label" or not isinstance(data, dict):
        return data
    adapted = dict(data)
    if isinstance(data.get("colors"), list):
        # The library declares `rgba` required (nullable); the specification says a colour MAY omit it.
        adapted["colors"] = [{"rgba": None, **c} if isinstance(c, dict) else c for c in data["colors"]]
    # It also demands that colors and properties list the same label values, which the specification does
    # not; our own rules check properties in full, so they are left out of its view.
    adapted.pop("properties", None)
    return adapted


def _location(loc: tuple[Any, ...], prefix: str) -> str:
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "attributes"


def model_issues(ngff: dict[str, Any], kind: str, version: str, path: str) -> list[Issue]:
    """Errors ome-zarr-models finds in ``ngff`` (the NGFF dictionary of one group) read as ``kind``."""
    model = _model(kind, version)
    if model is None:
        return []
    section = _SECTION.get(kind)
    data = ngff.get(section) if section else ngff
    if section and not isinstance(data, dict):
        return []
    rule = f"ngff.models.{kind}"
    where = display_path(path)
    with warnings.catch_warnings():
        # Its ValidationWarnings (e.g. "plate has no version" in 0.5) are not errors of the document.
        warnings.simplefilter("ignore")
        try:
            model.model_validate(_adapt(kind, data))
        except ValidationError as exc:
            return [
                Issue(
                    where,
                    rule,
                    ERROR,
                    f"ome-zarr-models: {_location(tuple(e['loc']), section or '')}: {' '.join(e['msg'].split())}",
                )
                for e in exc.errors()
            ]
        except (ValueError, TypeError) as exc:
            return [Issue(where, rule, ERROR, f"ome-zarr-models: {' '.join(str(exc).split())}")]
    return []


class ModelCrossCheck:
    """:func:`model_issues` memoised by document for one check run.

    A plate repeats the same field metadata hundreds of times, and ome-zarr-models spends about 2 ms per
    dataset entry (it builds a pydantic class inside a validator); the verdict depends only on the document.
    """

    def __init__(self) -> None:
        self._memo: dict[tuple[str, str, str], list[Issue]] = {}

    def issues(self, ngff: dict[str, Any], kind: str, version: str, path: str) -> list[Issue]:
        key = (kind, version, json.dumps(ngff, sort_keys=True, default=repr))
        if key not in self._memo:
            self._memo[key] = model_issues(ngff, kind, version, "")
        where = display_path(path)
        return [Issue(where, i.rule, i.severity, i.message) for i in self._memo[key]]
