"""The certification report to send to Pax8: Markdown for people, JSON for tools.

Both say first that the run used Pax8's simulation environment only. Every value that came
from outside (ids, the vendor's messages, URLs, names) is escaped for Markdown, so a
message cannot forge a table row, a heading or a link in the report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from config.logging import escape_controls
from fulfillment.certify.run import Certification, OrderRun, now_iso

MARKDOWN_NAME = "pax8-certification.md"
JSON_NAME = "pax8-certification.json"

NOTICE = (
    "This run used Pax8's simulation environment alone, with the simulation credentials "
    "only: it never touches production data (simulated requests are invisible to "
    "production credentials, and Pax8 deletes them after 7 days)."
)

_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")
_LABELS = {
    "externalProvisionerSubscriptionId": "subscription",
    "externalProvisionerCompanyId": "company",
    "externalProvisionerPartnerId": "partner",
    "externalProvisionerPartnerEnrollmentId": "partner enrollment",
}
_STEPS = (
    ("webhook", "webhook acknowledged"),
    ("outcome", "vendor outcome stored"),
    ("result", "result recorded at Pax8"),
)
"""The times of an order, from its order event's post (Pax8's are as seen by polling it
every 0.2 to 2 s; the vendor's outcome is the ledger's own timestamp)."""


def md(value: object) -> str:
    """``value`` as inert Markdown text on one line (control characters escaped too)."""
    return _MARKDOWN.sub(r"\\\1", escape_controls(str(value)))


def as_dict(cert: Certification) -> dict[str, Any]:
    """The JSON report."""
    target = cert.target
    return {
        "report": "pax8-fulfillment certification",
        "simulationOnly": True,
        "notice": NOTICE,
        "passed": cert.passed,
        "version": cert.version,
        "startedAt": now_iso(cert.started_at),
        "finishedAt": now_iso(cert.finished_at),
        "seconds": round(cert.finished_at - cert.started_at, 3),
        "pax8": {
            "environment": "simulation",
            "apiUrl": target.api_url,
            "provisionerId": target.provisioner_id,
            "provisionerName": target.provisioner_name,
            "webhookConfigurationId": target.webhook_id,
            "webhookUrl": target.webhook_url,
        },
        "deployment": {
            "publicUrl": target.public_url,
            "adapter": target.adapter,
            "ledgerRead": cert.ledger,
        },
        "types": [{"type": kind, "passed": ok} for kind, ok in cert.verdicts().items()],
        "failurePath": {
            "ran": cert.failure is not None,
            "passed": cert.failure_passed,
            "note": cert.failure_note,
            "order": cert.failure.as_dict() if cert.failure else None,
        },
        "orders": [o.as_dict() for o in cert.orders],
    }


def summary(cert: Certification) -> str:
    """``8 of 8 order types passed; failure path passed``."""
    verdicts = cert.verdicts()
    passed = sum(verdicts.values())
    text = f"{passed} of {len(verdicts)} order types passed"
    failing = [kind for kind, ok in verdicts.items() if not ok]
    if failing:
        text += f" (failed: {', '.join(failing)})"
    if cert.failure_passed is None:
        return f"{text}; failure path skipped"
    return f"{text}; failure path {'passed' if cert.failure_passed else 'failed'}"


def _seconds(run: OrderRun, key: str) -> str:
    value = run.seconds.get(key)
    return f"{value:.1f} s" if value is not None else "-"


def _ids(run: OrderRun) -> str:
    parts = [f"{_LABELS.get(k, k)} {v}" for k, v in run.external_ids.items()]
    return md(", ".join(parts)) if parts else "none"


def _verdict(run: OrderRun) -> str:
    if not run.ran:
        return "not run"
    return "passed" if run.passed else "FAILED"


def markdown(cert: Certification) -> str:
    """The Markdown report."""
    target = cert.target
    title = "PASSED" if cert.passed else "FAILED"
    lines = [
        f"# Pax8 provisioning certification: {title}",
        "",
        f"> **Simulation only.** {NOTICE}",
        "",
        "| | |",
        "|---|---|",
        f"| Result | {md(summary(cert))} |",
        f"| Software | pax8-fulfillment {md(cert.version)} |",
        f"| Run | {now_iso(cert.started_at)} to {now_iso(cert.finished_at)} "
        f"({cert.finished_at - cert.started_at:.1f} s) |",
        f"| Pax8 API | {md(target.api_url)} (simulation credentials) |",
        f"| Provisioner | {md(target.provisioner_name)} ({md(target.provisioner_id)}) |",
        f"| Webhook configuration | {md(target.webhook_id)}: {md(target.webhook_url)} |",
        f"| Vendor adapter | {md(target.adapter)} |",
        f"| Ledger read | {'yes' if cert.ledger else 'no (judged from Pax8 alone)'} |",
        "",
        "## Order types",
        "",
        "| Type | Verdict | Request | Result at Pax8 | Webhook | Result recorded |",
        "|---|---|---|---|---|---|",
    ]
    for kind, ok in cert.verdicts().items():
        runs = [o for o in cert.orders if o.type == kind and o.role == "required"]
        run = runs[-1] if runs else None
        if run is None:
            lines.append(f"| {kind} | FAILED | - | - | - | - |")
            continue
        lines.append(
            f"| {kind} | {'passed' if ok else 'FAILED'} | {md(run.request_id or '-')} | "
            f"{md(run.result or '-')} | {_seconds(run, 'webhook')} | {_seconds(run, 'result')} |"
        )
    note = cert.failure_note[:1].upper() + cert.failure_note[1:]
    lines += [
        "",
        "## Failure path",
        "",
        "An order the vendor must refuse with one Fail whose message a partner can act on.",
        "",
        f"- How it was provoked: {md(note)}",
    ]
    if cert.failure is not None:
        run = cert.failure
        lines += [
            f"- Verdict: **{'passed' if run.passed else 'FAILED'}**"
            + (f" ({md(run.problem)})" if run.problem else ""),
            f"- Result at Pax8: {md(run.result or 'none')}",
            f"- Message: {md(run.message or '-')}",
        ]
    lines += ["", "## Orders, in the order they ran", ""]
    every = [*cert.orders, *([cert.failure] if cert.failure else [])]
    for number, run in enumerate(every, 1):
        lines += [
            f"### {number}. {md(run.label)}: {_verdict(run)}",
            "",
            f"- Sequence: {md(run.sequence)}; expected: {md(run.expect)}",
        ]
        if run.problem:
            lines.append(f"- Problem: {md(run.problem)}")
        if run.ran:
            lines += [
                f"- Provision request: {md(run.request_id or '-')}",
                f"- Provision detail: {md(run.detail_id or '-')}",
                f"- Provision attempt: {md(run.attempt_id or '-')} "
                f"(webhook {md(run.webhook or '-')})",
                f"- Provision result: {md(run.result_id or '-')}: {md(run.result or 'none')}",
                f"- Subscription: {md(run.subscription_id or '-')}",
                f"- Message: {md(run.message or '-')}",
                f"- External ids: {_ids(run)}",
                "- Time from the order event: "
                + "; ".join(f"{label} {_seconds(run, key)}" for key, label in _STEPS),
            ]
        lines.append("")
    return "\n".join(lines)


def write(cert: Certification, directory: Path) -> tuple[Path, Path]:
    """Write both reports into ``directory`` (made if missing); their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    md_path, json_path = directory / MARKDOWN_NAME, directory / JSON_NAME
    md_path.write_text(markdown(cert), encoding="utf-8")
    json_path.write_text(json.dumps(as_dict(cert), indent=2) + "\n", encoding="utf-8")
    return md_path, json_path
