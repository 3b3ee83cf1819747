"""Validation of image hierarchies against OME-NGFF 0.4/0.5 and CellMap conventions, and a builder for them.

``check(url, model)`` reports every problem of a node and of the nodes its convention implies;
``inspect_node(url)`` summarises a hierarchy; :mod:`~bioimage_pipeline.validation.build` writes conforming ones.
"""

from bioimage_pipeline.validation.check import check
from bioimage_pipeline.validation.detect import MODELS
from bioimage_pipeline.validation.inspect import InspectReport, inspect_node
from bioimage_pipeline.validation.issues import Issue, ValidationReport
from bioimage_pipeline.validation.ngff_attributes import check_attributes

__all__ = ["MODELS", "InspectReport", "Issue", "ValidationReport", "check", "check_attributes", "inspect_node"]
