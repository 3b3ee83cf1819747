"""The names of the conventions ``check`` validates against (a vocabulary with no validator behind it, so
the command line can offer them without importing any array library)."""

from __future__ import annotations

from typing import Literal, get_args

Model = Literal[
    "ngff",
    "ngff.image",
    "ngff.labels",
    "ngff.plate",
    "ngff.well",
    "cellmap.cosem",
    "cellmap.neuroglancer_n5",
    "cellmap.annotation",
]

#: Model names ``check`` accepts, in the order they are documented.
MODELS: tuple[str, ...] = get_args(Model)
