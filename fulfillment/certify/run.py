"""Drive each planned order through Pax8's simulation environment and this deployment.

For each order: post the order event (Pax8 creates the request, detail and attempt and
delivers the webhook to the newest simulation webhook configuration), wait for the attempt
to be acknowledged (the receiver answered 2xx), then for the result to be recorded at Pax8,
read back through the API (``GET /provision-requests/{id}/results?provisionAttemptId=``):
exactly one, with the expected status. Every wait is bounded by the per-order timeout and
polls Pax8 gently (0.2 s growing to 2 s). Where the deployment's ledger is reachable, it
adds when the vendor's outcome was stored and stops early on an order that died at the
worker; without it (a deployment on another host) everything is judged from Pax8 alone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from config.settings import Settings
from config.version import __version__
from fulfillment.certify.plan import (
    EXTERNAL_ID_FIELDS,
    FailCase,
    OrderSpec,
    Role,
    Subject,
    order,
    plan,
)
from fulfillment.ledger import Ledger
from fulfillment.ledger.refs import Ref, Scope
from fulfillment.ledger.states import State
from fulfillment.views.orders import describe
from pax8.auth import Credentials
from pax8.client import Pax8Client
from pax8.errors import Pax8Error
from pax8.models import AttemptStatus, RequestType, ResultStatus
from vendors.conformance import unactionable

POLL_START, POLL_MAX = 0.2, 2.0


@dataclass
class OrderRun:
    """One order of the run and what became of it."""

    label: str
    type: str
    role: str
    sequence: str
    expect: str
    request_id: str = ""
    detail_id: str = ""
    attempt_id: str = ""
    result_id: str = ""
    subscription_id: str = ""
    webhook: str = ""
    """The attempt's status at Pax8 (Acknowledged: the receiver took the webhook)."""
    result: str = ""
    """Success or Fail, as recorded at Pax8 ("" if none)."""
    message: str = ""
    external_ids: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    """From the order event's post: ``webhook`` acknowledged, ``outcome`` stored in the
    ledger (when read), ``result`` recorded at Pax8."""
    ran: bool = True
    passed: bool = False
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the report's)."""
        return {
            "label": self.label,
            "type": self.type,
            "role": self.role,
            "sequence": self.sequence,
            "expected": self.expect,
            "ran": self.ran,
            "passed": self.passed,
            "problem": self.problem or None,
            "requestId": self.request_id or None,
            "detailId": self.detail_id or None,
            "attemptId": self.attempt_id or None,
            "resultId": self.result_id or None,
            "subscriptionId": self.subscription_id or None,
            "webhook": self.webhook or None,
            "result": self.result or None,
            "message": self.message or None,
            "externalIds": dict(self.external_ids),
            "seconds": dict(self.seconds),
        }


@dataclass(frozen=True)
class Target:
    """Where the run happens: Pax8's simulation environment and its webhook configuration."""

    api_url: str
    provisioner_id: str
    provisioner_name: str
    webhook_id: str
    webhook_url: str
    public_url: str | None
    adapter: str


@dataclass
class Certification:
    """The whole run: every order, each required type's verdict, the failure path."""

    target: Target
    required: list[str]
    started_at: float
    orders: list[OrderRun] = field(default_factory=list)
    failure: OrderRun | None = None
    failure_note: str = ""
    ledger: bool = False
    """Whether the deployment's ledger was read (timings of the vendor's outcome)."""
    finished_at: float = 0.0
    version: str = __version__

    def verdicts(self) -> dict[str, bool]:
        """Required type → whether every order of it passed."""
        out: dict[str, bool] = {}
        for kind in self.required:
            runs = [o for o in self.orders if o.type == kind and o.role == Role.REQUIRED.value]
            out[kind] = bool(runs) and all(o.passed for o in runs)
        return out

    @property
    def failure_passed(self) -> bool | None:
        """The failure path's verdict (None: skipped)."""
        return None if self.failure is None else self.failure.passed

    @property
    def passed(self) -> bool:
        """Every required type passed, and the failure path too when it ran."""
        return all(self.verdicts().values()) and self.failure_passed is not False


class Progress(Protocol):
    """Who watches the run (the CLI prints it; tests may record it)."""

    def begin(self, spec: OrderSpec) -> None:
        """An order is about to be posted."""

    def waiting(self, spec: OrderSpec, what: str, elapsed: float) -> None:
        """Still waiting for ``what`` (``the webhook``, ``the result at Pax8``)."""

    def end(self, run: OrderRun) -> None:
        """The order is done (passed or not)."""


class Silent:
    """Progress that shows nothing."""

    def begin(self, spec: OrderSpec) -> None:
        """Nothing."""

    def waiting(self, spec: OrderSpec, what: str, elapsed: float) -> None:
        """Nothing."""

    def end(self, run: OrderRun) -> None:
        """Nothing."""


class Certifier:
    """Runs the plan against Pax8's simulation environment (simulation credentials only)."""

    def __init__(
        self,
        pax8: Pax8Client,
        ledger: Ledger | None,
        *,
        timeout: float,
        progress: Progress | None = None,
        request: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        new_product_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if pax8.has_credentials(False):
            # The simulation environment only: a client that holds production credentials
            # could read or answer a real order by mistake.
            raise ValueError("the certification client must hold the simulation credentials only")
        self.pax8 = pax8
        self.ledger = ledger
        self.timeout = timeout
        self.progress: Progress = progress or Silent()
        self.request = request or {}
        self.details = details or {}
        self.new_product_id = new_product_id
        self.clock = clock
        self.sleep = sleep

    # -- the whole run -------------------------------------------------------------------

    def run(
        self, target: Target, types: Sequence[RequestType], fail_case: FailCase | None
    ) -> Certification:
        """Every sequence the ``types`` need, then the failure path."""
        out = Certification(target, [kind.value for kind in types], time.time())
        out.ledger = self.ledger is not None
        subjects: dict[str, Subject] = {}
        for steps in plan(types):
            subject = subjects[steps[0].sequence] = Subject(uuid.uuid4().hex[:10])
            blocked = ""
            for step in steps:
                spec = order(step, subject, self.request, self.details, self.new_product_id)
                if blocked:
                    out.orders.append(_not_run(spec, f"not run: {blocked}"))
                    continue
                result = self.drive(spec)
                out.orders.append(result)
                if result.passed:
                    subject.absorb(result.external_ids)
                    if step.type is RequestType.CHANGE_PRODUCT:
                        subject.product_id = str(spec.body["provisionRequest"]["productId"])
                    if step.type is RequestType.UPDATE:
                        subject.quantity = int(spec.body["provisionRequest"]["quantity"])
                elif step.creates:
                    blocked = f"{step.type.value} did not succeed, so there is nothing to change"
        self._failure(out, fail_case, subjects.get("subscription"))
        out.finished_at = time.time()
        return out

    def _failure(
        self, out: Certification, fail_case: FailCase | None, taken: Subject | None
    ) -> None:
        if fail_case is None:
            out.failure_note = (
                "skipped: no --fail-case says how to make this vendor refuse an order "
                "(e.g. --fail-case companyDomain=a-domain-your-vendor-refuses)"
            )
            return
        out.failure_note = fail_case.note
        if fail_case.taken_domain:
            creator = next(
                (o for o in out.orders if o.sequence == "subscription" and o.type == "NetNew"),
                None,
            )
            if creator is None or not creator.passed:
                out.failure_note += "; skipped: no NetNew of this run succeeded to take a domain"
                return
        spec = fail_case.spec(Subject(uuid.uuid4().hex[:10]), taken)
        out.failure = self.drive(spec)

    # -- one order -----------------------------------------------------------------------

    def drive(self, spec: OrderSpec) -> OrderRun:
        """Post ``spec``, follow it to its result at Pax8, judge it."""
        run = OrderRun(
            spec.label, spec.step.type.value, spec.step.role.value, spec.step.sequence, spec.expect
        )
        run.subscription_id = str(spec.body["provisionRequest"].get("subscriptionId") or "")
        self.progress.begin(spec)
        started, wall = self.clock(), time.time()
        deadline = started + self.timeout
        try:
            self._follow(spec, run, started, deadline, wall)
        except Pax8Error as exc:
            run.problem = f"Pax8: {exc}"
        self._judge(run)
        self.progress.end(run)
        return run

    def _follow(
        self, spec: OrderSpec, run: OrderRun, started: float, deadline: float, wall: float
    ) -> None:
        try:
            event = self.pax8.create_order_event(spec.body)
        except Pax8Error as exc:
            run.problem = f"Pax8 refused the order event: {exc}"
            return
        request, detail, attempt = (
            event.provision_request,
            event.provision_detail,
            event.provision_attempt,
        )
        if request is None or attempt is None:
            run.problem = "Pax8 answered the order event without a request or an attempt"
            return
        run.request_id, run.attempt_id = request.id, attempt.id
        run.detail_id = detail.id if detail is not None else (attempt.provision_detail_id or "")
        run.subscription_id = request.subscription_id or run.subscription_id

        status, error = attempt.status or "", attempt.error_detail or ""
        poll = POLL_START
        while status not in (AttemptStatus.ACKNOWLEDGED, AttemptStatus.FAILED):
            if self.clock() >= deadline:
                run.problem = f"Pax8 did not deliver the webhook within {self.timeout:g}s"
                run.webhook = status
                return
            self.progress.waiting(spec, "the webhook", self.clock() - started)
            self.sleep(poll)
            poll = min(POLL_MAX, poll * 1.5)
            seen = self.pax8.get_attempt(run.request_id, run.attempt_id, simulation=True)
            status, error = seen.status or "", seen.error_detail or ""
        run.webhook = status
        run.seconds["webhook"] = round(self.clock() - started, 3)
        if status == AttemptStatus.FAILED:
            run.problem = (
                f"Pax8 could not deliver the webhook: {error or 'no detail'} "
                "(fulfill doctor shows why)"
            )
            return

        poll = POLL_START
        while True:
            results = list(
                self.pax8.list_results(run.request_id, attempt_id=run.attempt_id, simulation=True)
            )
            if results:
                break
            state = self._ledger_state(run.request_id)
            if state is not None and state[0] is State.DEAD:
                run.problem = f"the order died at the worker, nothing reported: {state[1]}"
                return
            if self.clock() >= deadline:
                where = f" (the ledger has it {state[0].value})" if state else ""
                run.problem = f"no result at Pax8 within {self.timeout:g}s{where}"
                return
            self.progress.waiting(spec, "the result at Pax8", self.clock() - started)
            self.sleep(poll)
            poll = min(POLL_MAX, poll * 1.5)
        run.seconds["result"] = round(self.clock() - started, 3)
        if len(results) > 1:
            run.problem = f"{len(results)} results for one attempt (Pax8 keeps one)"
        result = results[0]
        run.result_id = result.id or ""
        run.result = result.status.value
        run.message = result.error_message or ""
        wire = result.model_dump(by_alias=True)
        run.external_ids = {k: str(wire[k]) for k in EXTERNAL_ID_FIELDS if wire.get(k)}
        outcome_at = self._outcome_at(run.request_id)
        if outcome_at is not None:
            run.seconds["outcome"] = round(max(0.0, outcome_at - wall), 3)

    def _ledger_state(self, request_id: str) -> tuple[State, str] | None:
        if self.ledger is None:
            return None
        record = self.ledger.get(Ref(Scope.PAX8_SIMULATION, request_id))
        return (record.state, record.error) if record is not None else None

    def _outcome_at(self, request_id: str) -> float | None:
        """When the ledger stored the vendor's outcome (None: not read, or not found)."""
        if self.ledger is None:
            return None
        view = describe(self.ledger, Ref(Scope.PAX8_SIMULATION, request_id))
        if view is None:
            return None
        done = (State.PROVISIONED.value, State.FAILED.value)
        times = [float(e["at"]) for e in view["history"] if e.get("state") in done and "at" in e]
        return min(times) if times else None

    @staticmethod
    def _judge(run: OrderRun) -> None:
        if run.problem:
            run.passed = False
            return
        if run.result != run.expect:
            if run.expect == ResultStatus.FAIL.value:
                run.problem = (
                    "the vendor accepted it: this failure case does not make it refuse an order"
                )
            else:
                run.problem = f"the vendor refused it: {run.message or 'no message'}"
            run.passed = False
            return
        if run.expect == ResultStatus.FAIL.value:
            why = unactionable(run.message, 400)
            if why:
                run.problem = f"its Fail message is no help to a partner: {why}"
                run.passed = False
                return
        run.passed = True


def _not_run(spec: OrderSpec, why: str) -> OrderRun:
    run = OrderRun(
        spec.label, spec.step.type.value, spec.step.role.value, spec.step.sequence, spec.expect
    )
    run.ran, run.problem = False, why
    return run


def now_iso(at: float) -> str:
    """``at`` (Unix time) as UTC ISO 8601."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NotReady(Exception):
    """The simulation environment is not set up for a run (the message says what to do)."""


def simulation_client(settings: Settings) -> Pax8Client:
    """A Pax8 client with the simulation credentials and no others (NotReady without them)."""
    client_id, secret = settings.pax8_simulation_client_id, settings.pax8_simulation_client_secret
    if client_id is None or secret is None:
        raise NotReady(
            "PAX8_SIMULATION_CLIENT_ID: not set; fulfill certify runs against Pax8's simulation "
            "environment only and refuses to run without the simulation credentials "
            "(PAX8_SIMULATION_CLIENT_ID and PAX8_SIMULATION_CLIENT_SECRET)"
        )
    return Pax8Client(
        settings.pax8_api_url,
        settings.pax8_token_url,
        simulation=Credentials(client_id, secret.get_secret_value()),
        timeout=settings.pax8_timeout_seconds,
    )


def find_target(pax8: Pax8Client, settings: Settings) -> Target:
    """The simulation provisioner and the webhook configuration Pax8 delivers to (the
    receiver's public URL); NotReady when there is none."""
    provisioner = pax8.provisioner(simulation=True)
    if provisioner.id is None:
        raise NotReady("Pax8 listed a simulation provisioner without an id")
    hooks = list(pax8.list_webhooks(provisioner.id, simulation=True))
    if not hooks:
        where = (settings.public_url or "https://fulfil.example.com").rstrip("/")
        raise NotReady(
            "no simulation webhook configuration: Pax8 has nowhere to deliver simulated "
            f"orders (fulfill webhooks create {where}/webhooks/pax8 --simulation, then put "
            "its credential in PAX8_SIMULATION_WEBHOOK_SECRETS and restart the receiver)"
        )
    latest = max(hooks, key=lambda hook: hook.created_date)
    return Target(
        api_url=settings.pax8_api_url,
        provisioner_id=provisioner.id,
        provisioner_name=provisioner.name,
        webhook_id=latest.id or "",
        webhook_url=latest.url,
        public_url=settings.public_url,
        adapter=settings.simulation_adapter,
    )
