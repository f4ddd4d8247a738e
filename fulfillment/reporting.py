"""Post the ProvisionResult a finished request owes Pax8: one per acknowledged attempt.

Results go to every attempt of the outcome's detail that has none yet, with the
credential set the request came in on (simulation or production). A POST that may have
reached Pax8 (the attempt is marked ``posting`` first) is checked before it is repeated,
so a timeout after Pax8 stored the result never makes a second one; a 409 means Pax8
has one already. Pax8's transient errors propagate to the task, which retries with
backoff; once its budget is spent the record stays ``provisioned``/``failed`` and
reconciliation reports it later.

A result Pax8 refuses (a 4xx) is not taken at its word: the attempt's status is looked up.
Pax8 counts an attempt as ``Acknowledged`` when the receiver's 202 reaches it, so a fast
worker can post before that; an attempt still ``Issued`` stays owed and the result is
retried with backoff (:attr:`ReportOutcome.waiting`). Only an attempt Pax8 says ``Failed``,
or no longer has, or that is acknowledged and still refused, is settled ``rejected``, with
Pax8's reason in the history and the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fulfillment.events import log_state
from fulfillment.ledger import Ledger, Record
from fulfillment.locks import RedisLock
from pax8.client import Pax8Client
from pax8.errors import AuthenticationError, ClientError, Conflict, NotFound
from pax8.models import AttemptStatus, ProvisionResult, ResultStatus

log = logging.getLogger(__name__)

OWED = ("pending", "posting")


class NotAcknowledgedYet(Exception):
    """Pax8 refused results for attempts it still counts as ``Issued``: try again later."""

    def __init__(self, attempt_ids: list[str]) -> None:
        super().__init__(attempt_ids)
        self.attempt_ids = attempt_ids

    def __str__(self) -> str:
        return f"attempt(s) {', '.join(self.attempt_ids)} not acknowledged at Pax8 yet"


@dataclass
class ReportOutcome:
    """What one report run did."""

    state: str
    posted: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    busy: bool = False


def build_result(record: Record, attempt_id: str) -> ProvisionResult:
    """The ProvisionResult for ``attempt_id`` from the record's stored outcome."""
    if record.outcome == "Fail":
        return ProvisionResult.fail(attempt_id, record.result_message)
    ids = {
        "external_provisioner_subscription_id": record.external_ids.get(
            "externalProvisionerSubscriptionId"
        ),
        "external_provisioner_partner_id": record.external_ids.get("externalProvisionerPartnerId"),
        "external_provisioner_company_id": record.external_ids.get("externalProvisionerCompanyId"),
        "external_provisioner_partner_enrollment_id": record.external_ids.get(
            "externalProvisionerPartnerEnrollmentId"
        ),
    }
    return ProvisionResult(
        provision_attempt_id=attempt_id,
        status=ResultStatus.SUCCESS,
        metadata=record.metadata or None,
        **{key: value for key, value in ids.items() if value},
    )


def _existing_result(pax8: Pax8Client, record: Record, attempt_id: str) -> str | None:
    for result in pax8.list_results(record.id, attempt_id=attempt_id, simulation=record.simulation):
        if result.provision_attempt_id in (None, attempt_id):
            return result.id or "unknown"
    return None


def report(
    ledger: Ledger,
    pax8: Pax8Client,
    request_id: str,
    lock_seconds: float = 120.0,
    owner: str | None = None,
) -> ReportOutcome:
    """Post what ``request_id`` owes; raises Pax8's transient errors for the task to retry."""
    record = ledger.get(request_id)
    if record is None:
        return ReportOutcome(state="missing")
    if record.state not in ("provisioned", "failed"):
        return ReportOutcome(state=record.state)
    # ``owner`` (the task id): a report task redelivered after a crash takes its lock back
    # instead of waiting for it to expire.
    lock = RedisLock(
        ledger.redis, ledger.key(request_id) + ":report-lock", lock_seconds, owner=owner
    )
    if not lock.acquire():
        return ReportOutcome(state=record.state, busy=True)
    try:
        return _report_locked(ledger, pax8, record)
    finally:
        lock.release()


def _report_locked(ledger: Ledger, pax8: Pax8Client, record: Record) -> ReportOutcome:
    outcome = ReportOutcome(state=record.state)
    attempts = ledger.attempts(record.id)
    for attempt in attempts:
        if attempt.status in OWED and attempt.detail_id != record.outcome_detail_id:
            # An attempt for a detail that a newer one replaced: its result is moot.
            ledger.settle(record.id, attempt.id, None, status="superseded")
    owed = [a for a in attempts if a.status in OWED and a.detail_id == record.outcome_detail_id]
    if record.source != "pax8" or not owed:
        # CloudBlue has no result callback; a Pax8 record with nothing owed is settled.
        outcome.state = ledger.settle(record.id, "", None)
        if outcome.state == "reported":
            log_state("reported", record, event="nothing-owed")
        return outcome
    for attempt in owed:
        if attempt.status == "posting":
            existing = _existing_result(pax8, record, attempt.id)
            if existing is not None:
                outcome.found.append(attempt.id)
                outcome.state = ledger.settle(record.id, attempt.id, existing)
                continue
        result = build_result(record, attempt.id)
        ledger.mark_posting(record.id, attempt.id)
        try:
            created = pax8.create_result(record.id, result, simulation=record.simulation)
            result_id: str | None = created.id
        except Conflict:
            result_id = _existing_result(pax8, record, attempt.id) or "conflict"
            outcome.found.append(attempt.id)
        except AuthenticationError:
            # Our credentials, not this attempt, are the problem: nothing is settled.
            raise
        except ClientError as exc:
            final = _final_refusal(ledger, pax8, record, attempt.id, exc)
            if final is None:
                outcome.waiting.append(attempt.id)
            else:
                outcome.rejected.append(attempt.id)
                outcome.state = ledger.settle(
                    record.id, attempt.id, None, status="rejected", note=final
                )
            continue
        else:
            outcome.posted.append(attempt.id)
        outcome.state = ledger.settle(record.id, attempt.id, result_id)
        log_state(
            "reported" if outcome.state == "reported" else record.state,
            record,
            event="result-posted",
            result=record.outcome,
            result_attempt=attempt.id,
        )
    return outcome


def _final_refusal(
    ledger: Ledger, pax8: Pax8Client, record: Record, attempt_id: str, error: ClientError
) -> str | None:
    """Why Pax8's refusal of a result for ``attempt_id`` is final, or None if it is not.

    Not final while the attempt is still ``Issued``: Pax8 has not counted the receiver's 202
    yet, and the same result is accepted once it has (the attempt goes back to ``pending``).
    Pax8's transient errors on the look-up propagate (the report is retried, nothing settled).
    """
    try:
        found = pax8.get_attempt(record.id, attempt_id, simulation=record.simulation)
        status: str | None = found.status
    except NotFound:
        status = None
    if status == AttemptStatus.ISSUED:
        why = f"Pax8 refused the result while the attempt is still Issued: {error.message}"
        ledger.mark_pending(record.id, attempt_id, "result-not-acknowledged", why)
        log_state(
            record.state,
            record,
            event="result-not-acknowledged",
            level=logging.WARNING,
            attempt_id=attempt_id,
            error=error.message,
        )
        return None
    where = "no longer exists at Pax8" if status is None else f"is {status} at Pax8"
    reason = f"{error.message} (the attempt {where})"
    log_state(
        record.state,
        record,
        event="result-rejected",
        level=logging.ERROR,
        attempt_id=attempt_id,
        error=reason,
    )
    return reason
