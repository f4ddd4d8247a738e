"""Post the ProvisionResult a finished request owes Pax8: one per acknowledged attempt.

Results go to every attempt of the outcome's detail that has none yet, with the
credential set the request came in on (simulation or production). A POST that may have
reached Pax8 (the attempt is marked ``posting`` first) is checked before it is repeated,
so a timeout after Pax8 stored the result never makes a second one; a 409 means Pax8
has one already. Pax8's transient errors propagate to the task, which retries with
backoff; once its budget is spent the record stays ``provisioned``/``failed`` and
reconciliation reports it later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fulfillment.events import log_state
from fulfillment.ledger import Ledger, Record
from fulfillment.locks import RedisLock
from pax8.client import Pax8Client
from pax8.errors import AuthenticationError, ClientError, Conflict
from pax8.models import ProvisionResult, ResultStatus

log = logging.getLogger(__name__)

OWED = ("pending", "posting")


@dataclass
class ReportOutcome:
    """What one report run did."""

    state: str
    posted: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
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
            # Pax8 refuses a result for this attempt (e.g. it never counted as acknowledged):
            # nothing we send will change that; a newer attempt, if any, gets the result.
            outcome.rejected.append(attempt.id)
            outcome.state = ledger.settle(record.id, attempt.id, None, status="rejected")
            log_state(
                record.state,
                record,
                event="result-rejected",
                level=logging.ERROR,
                attempt_id=attempt.id,
                error=exc.message,
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
