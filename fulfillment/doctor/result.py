"""What a check finds, and the report of one doctor run (JSON-ready both ways)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """How a check came out; ``fail`` makes ``fulfill doctor`` exit 1."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"

    @property
    def level(self) -> int:
        """0, 1 or 2: the value of the ``fulfillment_doctor_check_status`` metric."""
        return {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2}[self]


@dataclass(frozen=True)
class Finding:
    """What one check saw: its status, the detail, and the fix in one line (none when ok)."""

    status: Status
    detail: str
    fix: str = ""


def ok(detail: str) -> Finding:
    """An ``ok`` finding."""
    return Finding(Status.OK, detail)


def warn(detail: str, fix: str) -> Finding:
    """A ``warn`` finding: worth a look, nothing is broken yet."""
    return Finding(Status.WARN, detail, fix)


def fail(detail: str, fix: str) -> Finding:
    """A ``fail`` finding: orders are (or will be) lost, late or refused until it is fixed."""
    return Finding(Status.FAIL, detail, fix)


def worst(findings: list[Finding]) -> Finding:
    """One finding for several: the worst status, the details joined, the worst one's fix."""
    if not findings:
        return ok("nothing to check")
    top = max(findings, key=lambda f: f.status.level)
    detail = "; ".join(f.detail for f in findings if f.status is top.status)
    return Finding(top.status, detail, top.fix)


@dataclass(frozen=True)
class Check:
    """One row of the report: a check's stable name (the metric's label), its title, and
    what it found."""

    name: str
    title: str
    status: Status
    detail: str
    fix: str = ""
    backend: str = ""
    """The route whose backend the row is about, for a check run per backend (``vendor``
    with a routes file); ``""`` for the others."""

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
            "backend": self.backend,
        }


@dataclass(frozen=True)
class Report:
    """Every check of one run, in order."""

    checks: tuple[Check, ...]
    at: float
    """When the run ended (Unix time)."""
    version: str
    counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        counts = {status.value: 0 for status in Status}
        for check in self.checks:
            counts[check.status.value] += 1
        object.__setattr__(self, "counts", counts)

    @property
    def status(self) -> Status:
        """The worst status of any check."""
        return max((c.status for c in self.checks), key=lambda s: s.level, default=Status.OK)

    @property
    def ok(self) -> bool:
        """No check failed (warnings allowed)."""
        return self.status is not Status.FAIL

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``fulfill doctor --json`` prints and the store keeps)."""
        return {
            "status": self.status.value,
            "ok": self.ok,
            "at": self.at,
            "version": self.version,
            "counts": dict(self.counts),
            "checks": [check.as_dict() for check in self.checks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """The report :meth:`as_dict` wrote (a row of an unknown status reads as ``fail``)."""
        checks = []
        for row in data.get("checks") or []:
            try:
                status = Status(str(row.get("status")))
            except ValueError:
                status = Status.FAIL
            checks.append(
                Check(
                    name=str(row.get("name", "")),
                    title=str(row.get("title", row.get("name", ""))),
                    status=status,
                    detail=str(row.get("detail", "")),
                    fix=str(row.get("fix", "")),
                    backend=str(row.get("backend", "")),
                )
            )
        return cls(tuple(checks), float(data.get("at") or 0.0), str(data.get("version", "")))
