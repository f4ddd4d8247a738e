"""Small text helpers shared by the commands: tables, ages, JSON, masking, result lines.

Everything a table or a line shows that came from outside (a vendor's message, an id, a
note) passes :func:`safe`: control characters are shown as escapes, so a value can neither
forge a line nor send an escape sequence to the operator's terminal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import click

from config.logging import escape_controls
from config.scrub import mask as mask  # the console masks with the same function

# The ProvisionResult's external id fields, by the word an operator reads.
EXTERNAL_ID_LABELS = {
    "externalProvisionerSubscriptionId": "subscription",
    "externalProvisionerCompanyId": "company",
    "externalProvisionerPartnerId": "partner",
    "externalProvisionerPartnerEnrollmentId": "enrollment",
}


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=str, sort_keys=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (the last column is never padded)."""
    cells = [[safe(h) for h in headers]] + [["" if c is None else safe(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def age(timestamp: float, now: float | None = None) -> str:
    """``timestamp`` as a short age: ``4s``, ``12m``, ``3h``, ``2d``."""
    if not timestamp:
        return "-"
    seconds = max(0.0, (now or time.time()) - timestamp)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def when(timestamp: float) -> str:
    """``timestamp`` as local ``YYYY-MM-DD HH:MM:SS``."""
    if not timestamp:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def safe(value: Any) -> str:
    """``value`` as text with control characters escaped (``\\n``, ``\\x1b``)."""
    return escape_controls(str(value))


def clip(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def external_ids(ids: Mapping[str, str]) -> str:
    """``subscription sub-1, company tn-2`` from a result's external id fields."""
    parts = [f"{EXTERNAL_ID_LABELS.get(key, key)} {value}" for key, value in ids.items() if value]
    return ", ".join(parts)


def styled_outcome(outcome: str) -> str:
    """``Success`` in green, ``Fail`` and ``dead`` in red (plain when not a terminal)."""
    colour = "green" if outcome == "Success" else "red"
    return click.style(outcome, fg=colour, bold=True)
