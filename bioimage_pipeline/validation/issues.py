"""What a check finds: one :class:`Issue` per broken rule and node, gathered in a :class:`ValidationReport`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]

ERROR: Severity = "error"
WARNING: Severity = "warning"


@dataclass(frozen=True)
class Issue:
    """One broken rule on one node.

    ``path`` is the node's path inside the store (``"/"`` for the root), ``rule`` a stable dotted id,
    ``severity`` ``"error"`` for a MUST of the convention and ``"warning"`` for a SHOULD.
    """

    path: str
    rule: str
    severity: Severity
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "rule": self.rule, "severity": self.severity, "message": self.message}


@dataclass
class ValidationReport:
    url: str
    models: list[str]
    issues: list[Issue] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not any(i.severity == ERROR for i in self.issues)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == WARNING]

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "url": self.url,
            "models": list(self.models),
            "issues": [i.to_dict() for i in self.issues],
        }


def display_path(path: str) -> str:
    """Node paths are kept relative to the store root; the root itself is shown as ``/``."""
    return path.strip("/") or "/"


@dataclass
class Findings:
    """An append-only list of issues that rule functions write into; duplicates are dropped."""

    issues: list[Issue] = field(default_factory=list)
    _seen: set[Issue] = field(default_factory=set, repr=False)

    def add(self, path: str, rule: str, severity: Severity, message: str) -> None:
        issue = Issue(display_path(path), rule, severity, " ".join(message.split()))
        if issue not in self._seen:
            self._seen.add(issue)
            self.issues.append(issue)

    def error(self, path: str, rule: str, message: str) -> None:
        self.add(path, rule, ERROR, message)

    def warn(self, path: str, rule: str, message: str) -> None:
        self.add(path, rule, WARNING, message)

    def extend(self, issues: list[Issue]) -> None:
        for i in issues:
            self.add(i.path, i.rule, i.severity, i.message)
