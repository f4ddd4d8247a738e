"""Reconciliation: find work a lost webhook, a crash or an outage left undone, and redo it.

One run (at most one at a time: a Redis lock with an owner token; and at most one per
interval even with two beat processes: a throttle key):

1. pages ``GET /provision-requests/unfulfilled`` for each configured credential set;
2. for a request the ledger has in flight: nothing (no API call), unless it has been
   stuck longer than a task can live, then it is queued again;
3. for a request the ledger does not know: fetch its latest detail and attempt, create
   an attempt (``POST .../attempts``) when the latest is Failed or missing, and enqueue
   it exactly as if its webhook had arrived (at most 3 calls);
4. for a request the ledger reported but Pax8 still lists: check the latest attempt
   (1 call); a new one means a lost retry or a new detail, handled as in 3; an attempt the
   ledger settled without a result (Pax8 refused it) that Pax8 counts as acknowledged is
   owed again and reported (1 more call for each such attempt that is not the latest);
5. scans the ledger: records stuck in ``provisioned``/``failed`` are reported again,
   records stranded in ``received``/``queued``/``provisioning`` are queued again.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from config.routes import Routes
from fulfillment.intake.accept import accept, enqueue
from fulfillment.intake.notifications import InvalidNotification, parse_pax8
from fulfillment.intake.publisher import Publisher
from fulfillment.ledger import Ledger
from fulfillment.ledger.refs import Ref, is_id
from fulfillment.ledger.states import FINISHED, IN_FLIGHT, Accepted, AttemptState, Changed, State
from fulfillment.runtime.metrics import RECONCILE_BUCKETS
from fulfillment.workflow.policies import ReconcilePolicy
from pax8.client import Pax8Client
from pax8.errors import NotFound, Pax8Error
from pax8.models import AttemptStatus, ProvisionAttempt, ProvisionRequest, to_wire

log = logging.getLogger(__name__)


@dataclass
class ReconcileSummary:
    """What one run saw and did (logged, returned by the task, printed by the CLI)."""

    ran: bool = True
    skipped_reason: str = ""
    seen: int = 0
    in_flight: int = 0
    enqueued: int = 0
    attempts_created: int = 0
    rereported: int = 0
    reopened: int = 0
    requeued: int = 0
    purged: int = 0
    dead: int = 0
    unchanged: int = 0
    pages: int = 0
    api_calls: int = 0
    seconds: float = 0.0
    truncated: bool = False
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class Reconciler:
    """One reconciliation run with its collaborators."""

    def __init__(
        self,
        ledger: Ledger,
        pax8: Pax8Client,
        publisher: Publisher,
        policy: ReconcilePolicy,
        routes: Routes,
    ) -> None:
        self.ledger = ledger
        self.pax8 = pax8
        self.publisher = publisher
        self.policy = policy
        self.routes = routes
        self.summary = ReconcileSummary()
        self._deadline = float("inf")

    def _out_of_time(self) -> bool:
        """Past the run's budget: stop cleanly (in-flight work costs the next run nothing)."""
        if time.monotonic() < self._deadline:
            return False
        self.summary.truncated = True
        return True

    def run(self, force: bool = False) -> ReconcileSummary:
        """Reconcile now; ``force`` ignores the once-per-interval throttle (not the lock)."""
        started = time.monotonic()
        if self.policy.budget is not None:
            self._deadline = started + self.policy.budget
        lock = self.ledger.reconcile_lock(self.policy.lock_seconds)
        if not lock.acquire():
            return ReconcileSummary(ran=False, skipped_reason="another reconciliation is running")
        try:
            fresh = self.ledger.first_reconcile_within(self.policy.interval * 0.9)
            if not fresh and not force:
                return ReconcileSummary(ran=False, skipped_reason="ran within this interval")
            calls = self.pax8.calls
            for simulation in (False, True):
                if self.pax8.has_credentials(simulation) and not self._out_of_time():
                    self._listing(simulation)
            self._ledger_scan()
            self.summary.api_calls = self.pax8.calls - calls
            self.summary.seconds = round(time.monotonic() - started, 3)
            self._record_run()
        finally:
            lock.release()
        log.info("reconciliation: %s", json.dumps(self.summary.as_dict()))
        return self.summary

    def _record_run(self) -> None:
        """Keep a run counter and the last summary where operators (and tests) can read them."""
        self.ledger.record_reconcile_run(
            {"at": time.time(), **self.summary.as_dict()}, RECONCILE_BUCKETS
        )

    # -- Pax8's view ---------------------------------------------------------------------

    def _listing(self, simulation: bool) -> None:
        try:
            pages = self.pax8.pages(
                "/provision-requests/unfulfilled",
                ProvisionRequest,
                simulation=simulation,
                size=self.policy.page_size,
            )
            for page in pages:
                self.summary.pages += 1
                refs: dict[str, Ref] = {}
                for request in page.content:
                    if is_id(request.id):
                        refs[request.id] = Ref.of("pax8", simulation, request.id)
                    else:  # never a key, a path or a log field: say so, without its value
                        self.summary.errors.append("Pax8 listed a request with an invalid id")
                scan = self.ledger.states(list(refs.values()))
                for request in page.content:
                    if self._out_of_time():
                        return
                    ref = refs.get(request.id)
                    if ref is None:
                        continue
                    self.summary.seen += 1
                    if ref in scan.corrupt:
                        self.summary.errors.append(f"{ref}: the ledger key is not a record")
                        continue
                    self._one(request, ref, scan.states.get(ref))
        except Pax8Error as exc:
            which = "simulation" if simulation else "production"
            self.summary.errors.append(f"listing {which} unfulfilled requests: {exc}")
            log.warning("reconciliation could not list %s requests: %s", which, exc)

    def _one(self, request: ProvisionRequest, ref: Ref, known: tuple[State, float] | None) -> None:
        now = time.time()
        if known is None:
            self._recover(request, ref.simulation)
            return
        state, since = known
        if state in IN_FLIGHT:
            if now - since > self._stuck_after(state):
                self._requeue(ref, state)
            else:
                self.summary.in_flight += 1
        elif state is State.DEAD:
            self.summary.dead += 1
        elif state is State.REPORTED:
            self._check_reported(request, ref)
        else:
            self.summary.unchanged += 1  # provisioned/failed: the ledger scan reports it

    def _check_reported(self, request: ProvisionRequest, ref: Ref) -> None:
        try:
            latest = self.pax8.get_latest_attempt(ref.id, simulation=ref.simulation)
        except NotFound:
            latest = None
        except Pax8Error as exc:
            self.summary.errors.append(f"{ref}: {exc}")
            return
        attempts = self.ledger.attempts(ref)
        known = {attempt.id for attempt in attempts}
        if latest is not None and latest.id in known:
            rejected = [a.id for a in attempts if a.status is AttemptState.REJECTED]
            if not (rejected and self._reopen(ref, rejected, latest)):
                self.summary.unchanged += 1
            return
        self._recover(request, ref.simulation, latest, latest_known=True)

    def _reopen(self, ref: Ref, rejected: list[str], latest: ProvisionAttempt) -> bool:
        """Report again the attempts settled without a result that Pax8 counts acknowledged."""
        reopened = False
        for attempt_id in rejected:
            try:
                attempt = (
                    latest
                    if attempt_id == latest.id
                    else self.pax8.get_attempt(ref.id, attempt_id, simulation=ref.simulation)
                )
            except NotFound:
                continue
            except Pax8Error as exc:
                self.summary.errors.append(f"{ref}: {exc}")
                continue
            if attempt.status != AttemptStatus.ACKNOWLEDGED:
                continue
            note = "Pax8 counts it acknowledged and still lists the request as unfulfilled"
            after = self.ledger.reopen(ref, attempt_id, note)
            if after is not None and after in FINISHED:
                reopened = True
        if reopened:
            self.publisher.report(ref)
            self.summary.reopened += 1
        return reopened

    def _recover(
        self,
        request: ProvisionRequest,
        simulation: bool,
        latest: ProvisionAttempt | None = None,
        latest_known: bool = False,
    ) -> None:
        """Enqueue a request as if its webhook had arrived (≤ 3 API calls)."""
        try:
            detail = self.pax8.get_latest_detail(request.id, simulation=simulation)
            if not latest_known:
                try:
                    latest = self.pax8.get_latest_attempt(request.id, simulation=simulation)
                except NotFound:
                    latest = None
            attempt = latest
            if attempt is not None and attempt.status == AttemptStatus.ISSUED:
                created = attempt.created_date.timestamp() if attempt.created_date else 0.0
                if time.time() - created < self.policy.received_grace:
                    self.summary.in_flight += 1  # Pax8 is delivering it right now
                    return
            if (
                attempt is None
                or attempt.status != AttemptStatus.ACKNOWLEDGED
                or attempt.provision_detail_id not in (None, detail.id)
            ):
                attempt = self.pax8.create_attempt(request.id, simulation=simulation)
                self.summary.attempts_created += 1
            body = {
                "isSimulation": simulation,
                "provisionRequest": to_wire(request),
                "provisionDetail": to_wire(detail),
                "provisionAttempt": to_wire(attempt),
            }
            notice, _ = parse_pax8(json.dumps(body).encode())
            intake = accept(self.ledger, self.publisher, notice, self.routes)
        except Pax8Error as exc:
            self.summary.errors.append(f"{request.id}: {exc}")
            log.warning("reconciliation could not recover %s: %s", request.id, exc)
            return
        except InvalidNotification as exc:  # e.g. a type this version does not know
            self.summary.errors.append(f"{request.id}: {exc}")
            return
        if intake.action in (Accepted.PROVISION, Accepted.QUEUED, Accepted.REPORT):
            self.summary.enqueued += 1
        else:
            self.summary.in_flight += 1

    # -- the ledger's view ---------------------------------------------------------------

    def _stuck_after(self, state: State) -> float:
        return self.policy.received_grace if state is State.RECEIVED else self.policy.stuck_after

    def _requeue(self, ref: Ref, state: State) -> None:
        change = self.ledger.reset(
            ref, event="requeued", note=f"stuck in {state}", only_from=IN_FLIGHT
        )
        if change.action is not Changed.OK:
            return
        record = self.ledger.get(ref)
        if record is None:
            return
        enqueue(self.ledger, self.publisher, ref, record.type, record.detail_id, record.route)
        self.summary.requeued += 1

    def _ledger_scan(self) -> None:
        now = time.time()
        for state in FINISHED:
            for ref in self.ledger.in_state(state, older_than=now - self.policy.report_grace):
                self.publisher.report(ref)
                self.summary.rereported += 1
        for state in IN_FLIGHT:
            older_than = now - self._stuck_after(state)
            for ref in self.ledger.in_state(state, older_than=older_than):
                self._requeue(ref, state)
        if self.policy.retention:
            # Records do not grow without bound: reported ones go after the retention.
            self.summary.purged = self.ledger.purge_reported(now - self.policy.retention)


def last_run(ledger: Ledger) -> tuple[int, dict[str, Any] | None]:
    """How many reconciliations ran, and the summary of the last one."""
    return ledger.reconcile_runs()


def reconcile(
    ledger: Ledger,
    pax8: Pax8Client,
    publisher: Publisher,
    policy: ReconcilePolicy,
    force: bool = False,
    *,
    routes: Routes,
) -> ReconcileSummary:
    """Run one reconciliation (see the module docstring); what it recovers is routed by
    ``routes``, as intake routes a webhook."""
    return Reconciler(ledger, pax8, publisher, policy, routes).run(force=force)
