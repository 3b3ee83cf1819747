"""The ``bioimage_pipeline`` code location: the modules of :mod:`bioimage_pipeline.defs`, loaded as a folder,
with the resources and executor bound here.

A dg project (``[tool.dg]`` in ``pyproject.toml``): ``dg launch``, ``dg dev`` and ``dg list defs`` load this
module, as do ``dagster dev`` (``workspace.yaml``) and ``dagster asset materialize -m
bioimage_pipeline.definitions``. Nothing in ``defs/`` is listed by hand: a new asset, check, sensor, schedule
or job there is part of the location once its module exists.
"""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

import bioimage_pipeline.defs
from bioimage_pipeline.defs.resources import BioimageResource


def _project_root() -> Path | None:
    """The folder whose ``pyproject.toml`` declares this dg project, when the package runs from its source
    tree. An installed wheel has none — and the first ``pyproject.toml`` above it may be another project's
    (one with this package in its virtualenv), so its ``root_module`` must be this package."""
    for folder in Path(__file__).resolve().parents:
        config = folder / "pyproject.toml"
        if config.is_file():
            try:
                project = tomllib.loads(config.read_text(encoding="utf-8"))["tool"]["dg"]["project"]
            except (tomllib.TOMLDecodeError, KeyError, TypeError, UnicodeDecodeError):
                return None
            return folder if project.get("root_module") == __package__ else None
    return None


def load_defs_folder() -> dg.Definitions:
    """Every definition in the modules of :mod:`bioimage_pipeline.defs`."""
    root = _project_root()
    if root is not None:
        return dg.load_from_defs_folder(path_within_project=root)
    # Installed without the project's pyproject.toml: the same folder, found through the package itself
    # (load_from_defs_folder needs the project file; load_defs, which it wraps, does not).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return dg.load_defs(defs_root=bioimage_pipeline.defs)


_FOLDER = load_defs_folder()
#: The assets and checks of the defs folder (tests materialise them with their own resources).
ASSETS = list(_FOLDER.assets or [])
CHECKS = list(_FOLDER.asset_checks or [])


#: Steps run in processes of their own, as many at once as there are cores (``max_concurrent`` in the run's
#: ``execution`` config changes it): the store scans of a run fan out over them. Each process is forked
#: from a server that has imported this code location once, so a step starts in a fraction of a second
#: rather than paying the imports again.
EXECUTOR = dg.multiprocess_executor.configured(
    lambda config: {
        "max_concurrent": config["max_concurrent"],
        "start_method": {"forkserver": {"preload_modules": [__name__]}},
    },
    config_schema={"max_concurrent": dg.Field(int, default_value=0, is_required=False)},
    name="bioimage_executor",
)


def build_definitions(bioimage: BioimageResource | None = None) -> dg.Definitions:
    """The code location with the given configuration (tests pass temporary roots and catalog)."""
    return dg.Definitions.merge(
        _FOLDER,
        dg.Definitions(
            resources={
                "bioimage": bioimage or BioimageResource(),
                "duckdb": DuckDBResource(database=":memory:"),
            },
            executor=EXECUTOR,
        ),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location as the tools load it."""
    return build_definitions()
