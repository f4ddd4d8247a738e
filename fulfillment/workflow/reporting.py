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
from typing import TYPE_CHECKING

from fulfillment.ledger import Ledger, Record
from fulfillment.ledger.events import log_state
from fulfillment.ledger.locks import RedisLock
from fulfillment.ledger.records import Attempt, ReportStart
from fulfillment.ledger.refs import Ref
from fulfillment.ledger.states import OWED, AttemptState, State
from fulfillment.runtime import metrics
from fulfillment.workflow.outcomes import Next, Outcome
from pax8.errors import (
    AuthenticationError,
    ClientError,
    Conflict,
    CredentialsMissing,
    NotFound,
    PermanentError,
    TransientError,
)
from pax8.models import AttemptStatus, ProvisionResult, ResultStatus

if TYPE_CHECKING:
    from fulfillment.services import Services
    from pax8.client import Pax8Client

log = logging.getLogger(__name__)


class NotAcknowledgedYet(Exception):
    """Pax8 refused results for attempts it still counts as ``Issued``: try again later."""

    def __init__(self, attempt_ids: list[str]) -> None:
        super().__init__(attempt_ids)
        self.attempt_ids = attempt_ids

    def __str__(self) -> str:
        return f"attempt(s) {', '.join(self.attempt_ids)} not acknowledged at Pax8 yet"


@dataclass
class ReportRun:
    """What one report run did, attempt by attempt (folded into an Outcome by report())."""

    state: State | None
    posted: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    busy: bool = False


def build_result(record: Record, attempt_id: str) -> ProvisionResult:
    """The ProvisionResult for ``attempt_id`` from the record's stored outcome."""
    if record.outcome is ResultStatus.FAIL:
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
    services: Services,
    ref: Ref,
    owner: str | None = None,
    transient: tuple[type[BaseException], ...] = (),
    counted: bool = True,
    started: ReportStart | None = None,
) -> Outcome:
    """Post what ``request_id`` owes Pax8, and say what should happen next.

    RETRY (with the report policy's backoff, counted in the ledger's ``report_retries``
    unless not ``counted``: the try the provisioning task makes right away is not one of
    the report task's) when Pax8 cannot take it now or has not counted an attempt yet;
    DONE when reported,
    nothing owed, or left for reconciliation (budget spent, or our credentials are refused:
    ``alert``); DEAD when Pax8 refuses for good. ``owner`` (the task id) lets a report task
    redelivered after a crash take its lock back instead of waiting for it to expire.
    ``started``: the run the outcome's storing started already, under ``owner``'s lock.
    """
    ledger = services.ledger
    retryable: tuple[type[BaseException], ...] = (TransientError, *transient)
    try:
        run = report_run(
            ledger, services.pax8, ref, services.policies.lease_seconds, owner, started
        )
    except retryable as exc:
        return _later(services, ref, exc, counted)
    except (AuthenticationError, CredentialsMissing) as exc:
        # A credentials problem: the outcome stays safe in the ledger, reconciliation
        # reports it once an operator fixed the settings; Sentry says what to fix.
        log_state(
            State.PROVISIONED,
            ref=ref,
            event="report-unauthorized",
            level=logging.ERROR,
            error=str(exc),
        )
        return Outcome(Next.DONE, "unauthorized", error=exc, alert=True)
    except PermanentError as exc:
        reason = f"reporting failed: {exc}"
        ledger.mark_dead(ref, reason, event="report-refused")
        metrics.DEAD_ORDERS.labels("report-refused").inc()
        log_state(
            State.DEAD, ref=ref, event="report-refused", level=logging.ERROR,
            error=str(exc),
        )  # fmt: skip
        return Outcome.dead(reason, exc)
    if run.busy:
        # Another report run holds this request; look again shortly for what it missed.
        return Outcome.retry(services.policies.busy_countdown, "another report run holds it")
    if run.waiting:
        # Results Pax8 refused only because it has not counted the attempts yet.
        return _later(services, ref, NotAcknowledgedYet(run.waiting), counted)
    return Outcome.done(state=run.state)


def _later(services: Services, ref: Ref, error: BaseException, counted: bool) -> Outcome:
    """Retry the report within its budget; past it, leave the order to reconciliation."""
    policy = services.policies.report
    retry_after = getattr(error, "retry_after", None)
    if not counted:
        metrics.RETRIES.labels(metrics.REPORT).inc()
        return Outcome.retry(policy.delay(0, retry_after), str(error), error)
    retries = services.ledger.count_report_retry(ref)
    if policy.exhausted(retries - 1):
        # Not dead: the outcome is safe in the ledger; reconciliation reports it later,
        # with a fresh budget.
        services.ledger.reset_report_retries(ref)
        log_state(
            State.PROVISIONED,
            ref=ref,
            event="report-deferred",
            level=logging.WARNING,
            error=str(error),
            retries=retries - 1,
        )
        return Outcome.done(f"deferred: {error}")
    delay = policy.delay(retries - 1, retry_after)
    metrics.RETRIES.labels(metrics.REPORT).inc()
    log.warning("request_id=%s report failed (%s); retry %d in %.1fs", ref, error, retries, delay)
    return Outcome.retry(delay, str(error), error)


def report_run(
    ledger: Ledger,
    pax8: Pax8Client,
    ref: Ref,
    lock_seconds: float = 120.0,
    owner: str | None = None,
    started: ReportStart | None = None,
) -> ReportRun:
    """One report run under the order's report lock; Pax8's errors propagate.

    In the normal case two ledger round trips: one script takes the lock, reads the record
    and its attempts and marks the owed ones ``posting``
    (:meth:`~fulfillment.ledger.Ledger.begin_report`); the last settle gives the lock back.
    One, when the run was ``started`` already (by the script that stored the outcome, under
    ``owner``'s lock).
    """
    lock = ledger.report_lock(ref, lock_seconds, owner=owner)
    if started is not None:
        lock.held = started.action == "locked"
        start = started
    else:
        start = ledger.begin_report(ref, lock)
    if start.action == "busy":
        return ReportRun(state=start.state, busy=True)
    if start.record is None:
        return ReportRun(state=start.state)
    try:
        return _report_locked(ledger, pax8, start.record, list(start.attempts), lock)
    finally:
        if lock.held:
            lock.release()


def _report_locked(
    ledger: Ledger, pax8: Pax8Client, record: Record, attempts: list[Attempt], lock: RedisLock
) -> ReportRun:
    """Settle and POST what ``attempts`` (as they were before the run marked them) owe;
    the last settle releases ``lock`` with it."""
    outcome = ReportRun(state=record.state)
    for attempt in attempts:
        if attempt.status in OWED and attempt.detail_id != record.outcome_detail_id:
            # An attempt for a detail that a newer one replaced: its result is moot.
            ledger.settle(record.ref, attempt.id, None, status=AttemptState.SUPERSEDED)
    owed = [a for a in attempts if a.status in OWED and a.detail_id == record.outcome_detail_id]
    if record.source != "pax8" or not owed:
        # CloudBlue reads the outcome from the receiver's answer to its call (there is no
        # result to post); a Pax8 record with nothing owed is settled.
        outcome.state = ledger.settle(record.ref, "", None, release=lock)
        if outcome.state is State.REPORTED:
            log_state(State.REPORTED, record, event="nothing-owed")
        return outcome
    for attempt in owed:
        last = lock if attempt is owed[-1] else None
        if attempt.status is AttemptState.POSTING:
            existing = _existing_result(pax8, record, attempt.id)
            if existing is not None:
                outcome.found.append(attempt.id)
                outcome.state = ledger.settle(record.ref, attempt.id, existing, release=last)
                continue
            ledger.mark_posting(record.ref, attempt.id)
        _post(ledger, pax8, record, attempt.id, outcome, marked=True, release=last)
    return outcome


def _post(
    ledger: Ledger,
    pax8: Pax8Client,
    record: Record,
    attempt_id: str,
    run: ReportRun,
    again: bool = False,
    *,
    marked: bool = False,
    release: RedisLock | None = None,
) -> None:
    """POST the result owed to one attempt and settle what Pax8 answered (see the module).

    A refusal is checked against the attempt's status: still ``Issued`` means Pax8 has not
    counted the receiver's 202 yet (the attempt stays owed, the report is retried);
    ``Acknowledged`` may mean it counted it between the POST and the look-up, so the POST is
    made once more at once; anything else, or a second refusal, is final (``rejected``).
    Pax8's transient errors propagate: nothing is settled, the report is retried.
    ``marked``: the attempt is marked ``posting`` already (the run's first script did it);
    ``release``: the report lock, given back with the settling of a result Pax8 took.
    """
    if not marked:
        ledger.mark_posting(record.ref, attempt_id)
    try:
        created = pax8.create_result(
            record.id, build_result(record, attempt_id), simulation=record.simulation
        )
        result_id: str | None = created.id
        run.posted.append(attempt_id)
        metrics.RESULTS_POSTED.labels(str(record.outcome or "unknown")).inc()
    except Conflict:
        result_id = _existing_result(pax8, record, attempt_id) or "conflict"
        run.found.append(attempt_id)
    except AuthenticationError:
        # Our credentials, not this attempt, are the problem: nothing is settled.
        raise
    except ClientError as exc:
        try:
            status: str | None = pax8.get_attempt(
                record.id, attempt_id, simulation=record.simulation
            ).status
        except NotFound:
            status = None
        if status == AttemptStatus.ISSUED:
            why = f"Pax8 refused the result while the attempt is still Issued: {exc.message}"
            ledger.mark_pending(record.ref, attempt_id, "result-not-acknowledged", why)
            log_state(
                record.state, record, event="result-not-acknowledged", level=logging.WARNING,
                attempt_id=attempt_id, error=exc.message,
            )  # fmt: skip
            run.waiting.append(attempt_id)
            return
        if status == AttemptStatus.ACKNOWLEDGED and not again:
            _post(ledger, pax8, record, attempt_id, run, again=True)
            return
        where = "no longer exists at Pax8" if status is None else f"is {status} at Pax8"
        reason = f"{exc.message} (the attempt {where})"
        log_state(
            record.state, record, event="result-rejected", level=logging.ERROR,
            attempt_id=attempt_id, error=reason,
        )  # fmt: skip
        run.rejected.append(attempt_id)
        run.state = ledger.settle(
            record.ref, attempt_id, None, status=AttemptState.REJECTED, note=reason
        )
        return
    run.state = ledger.settle(record.ref, attempt_id, result_id, release=release)
    log_state(
        run.state or record.state,
        record,
        event="result-posted",
        result=record.outcome,
        result_attempt=attempt_id,
    )
