"""The OME-NGFF specification's own 0.4 and 0.5 attribute suites and examples, case by case.

A suite entry is checked the way its schema is: ``<kind>_suite.json`` cases must be free of errors when
``valid`` and have an error when not; ``strict_<kind>_suite.json`` cases (the SHOULD layer) must be free of
any issue when valid, and have a warning (but no error) when not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bioimage_pipeline.validation import Issue, check_attributes
from bioimage_pipeline_tests.corpus import CORPUS

SUITES = CORPUS / "ngff-conformance"
KIND = {
    "image": "image",
    "label": "label",
    "plate": "plate",
    "well": "well",
    "bf2raw": "bioformats2raw",
    "ome": "series",
}

# Cases where the suite itself is wrong. Each names the rule our validator applies to it and why the suite's
# verdict contradicts the specification's prose; the comparison is made with that rule's issues removed,
# and the rule must be present (so the exception cannot hide an unrelated disagreement).
SUITE_ERRORS: dict[tuple[str, str, str | None], tuple[str, str]] = {
    # "The length of the scale and translation array MUST be the same as the length of 'axes'" (0.4 §multiscales):
    # this "valid" case has 3 axes and a 2-element scale. JSON Schema cannot compare lengths; 0.5 fixed the data.
    ("0.4", "image_suite", "valid/mismatch_axes_units.json"): (
        "ngff.multiscales.transforms.length",
        "scale length differs from the number of axes",
    ),
    # 0.4 §plate: "The path MUST consist of a name in the rows list, a file separator (/), and a name from the
    # columns list, in that order." Every case of the 0.4 plate suites uses rows [1] / columns [A] with the
    # path "A/1" (column first). 0.5 fixed the data and added well_path_has_column_before_row as invalid.
    ("0.4", "plate_suite", None): ("ngff.plate.wells.path.names", "well path lists the column before the row"),
    ("0.4", "strict_plate_suite", None): ("ngff.plate.wells.path.names", "well path lists the column before the row"),
}


def _suite_cases() -> list:
    cases = []
    for version in ("0.4", "0.5"):
        for suite in sorted((SUITES / version / "tests").glob("*_suite.json")):
            doc = json.loads(suite.read_text())
            name = suite.stem
            for index, test in enumerate(doc["tests"]):
                case_id = f"{version}/{name}/{index}:{test.get('formerly') or test.get('description')}"
                cases.append(pytest.param(version, name, index, test, id=case_id))
    return cases


def _exception(version: str, suite: str, formerly: str | None) -> tuple[str, str] | None:
    return SUITE_ERRORS.get((version, suite, formerly)) or SUITE_ERRORS.get((version, suite, None))


def _compare(issues: list[Issue], *, valid: bool, strict: bool) -> None:
    errors = [i for i in issues if i.severity == "error"]
    warnings = [i for i in issues if i.severity == "warning"]
    if strict:
        if valid:
            assert not issues, issues
        else:
            assert not errors, errors
            assert warnings, "a strict-invalid case must raise at least one warning"
    elif valid:
        assert not errors, errors
    else:
        assert errors, "an invalid case must raise at least one error"


def test_the_suites_are_where_expected() -> None:
    counts = {version: len(list((SUITES / version / "tests").glob("*_suite.json"))) for version in ("0.4", "0.5")}
    assert counts == {"0.4": 8, "0.5": 8}
    assert len(_suite_cases()) == 92 + 86  # per the README: 22/70 and 21/65 valid/invalid


@pytest.mark.parametrize(("version", "suite", "index", "test"), _suite_cases())
def test_suite_case(version: str, suite: str, index: int, test: dict) -> None:
    strict = suite.startswith("strict_")
    kind = KIND[suite.removeprefix("strict_").removesuffix("_suite")]
    issues = check_attributes(test["data"], kind, version=version)
    exception = _exception(version, suite, test.get("formerly"))
    if exception is not None:
        rule, _why = exception
        if any(i.rule == rule for i in issues):
            issues = [i for i in issues if i.rule != rule]
        else:
            # The documented suite error must really be there; otherwise the entry is stale.
            assert suite == "plate_suite" and not test["valid"], f"{rule} expected on {test.get('formerly')}"
    _compare(issues, valid=test["valid"], strict=strict)


def test_documented_suite_errors_really_disagree() -> None:
    """Each exception changes the verdict: without it the case would fail, so none is kept by accident."""
    doc = json.loads((SUITES / "0.4" / "tests" / "image_suite.json").read_text())
    case = next(t for t in doc["tests"] if t.get("formerly") == "valid/mismatch_axes_units.json")
    assert case["valid"] is True
    assert [i.rule for i in check_attributes(case["data"], "image", version="0.4") if i.severity == "error"] == [
        "ngff.multiscales.transforms.length"
    ]
    plates = json.loads((SUITES / "0.4" / "tests" / "plate_suite.json").read_text())
    valid = [t for t in plates["tests"] if t["valid"]]
    assert len(valid) == 3
    for t in valid:
        errors = [i for i in check_attributes(t["data"], "plate", version="0.4") if i.severity == "error"]
        assert [i.rule for i in errors] == ["ngff.plate.wells.path.names"]
        assert "column before the row" in errors[0].message


def _example_cases() -> list:
    cases = []
    for version in ("0.4", "0.5"):
        for config in sorted((SUITES / version / "examples").glob("*/.config.json")):
            schema = json.loads(config.read_text())["schema"].rsplit("/", 1)[-1].removesuffix(".schema")
            for example in sorted(p for p in config.parent.glob("*.json") if not p.name.startswith(".")):
                case_id = f"{version}/{example.parent.name}/{example.name}"
                cases.append(pytest.param(version, schema, example, id=case_id))
    return cases


@pytest.mark.parametrize(("version", "schema", "example"), _example_cases())
def test_specification_example(version: str, schema: str, example: Path) -> None:
    # The upstream runner drops lines starting with // before parsing (the examples carry comments).
    text = "\n".join(line for line in example.read_text().splitlines() if not line.lstrip().startswith("//"))
    doc = json.loads(text)
    attrs = doc["attributes"] if version == "0.5" else doc  # 0.5 examples are whole zarr.json documents
    issues = check_attributes(attrs, KIND[schema.removeprefix("strict_")], version=version)
    _compare(issues, valid=True, strict=schema.startswith("strict_"))


def test_examples_are_all_found() -> None:
    assert len(_example_cases()) == 20


def test_the_version_is_read_from_the_document_when_not_given() -> None:
    doc = json.loads((SUITES / "0.5" / "tests" / "image_suite.json").read_text())
    valid = next(t for t in doc["tests"] if t["valid"])
    assert not [i for i in check_attributes(valid["data"], "image") if i.severity == "error"]
    # The same 0.5 document checked as part of a 0.4 hierarchy is inconsistent.
    assert "ngff.version.consistent" in {i.rule for i in check_attributes(valid["data"], "image", version="0.4")}
