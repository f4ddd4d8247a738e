"""The domain functions a task calls, in-process: provision, fulfil, report, accept.

A real redis-server and the sandbox's Pax8 in-process (``conftest``); no worker. Each test
drives one outcome and checks what the ledger and Pax8 hold afterwards, and what the
function told its caller to do (:class:`~fulfillment.workflow.outcomes.Outcome`).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from config.settings import Settings
from fulfillment.intake.accept import accept
from fulfillment.intake.notifications import parse_pax8
from fulfillment.ledger.refs import Ref, Scope
from fulfillment.ledger.states import Accepted, AttemptState, State
from fulfillment.services import Services
from fulfillment.workflow.outcomes import Next
from fulfillment.workflow.provisioning import fulfil, provision
from fulfillment.workflow.reporting import report
from tests.support.procs import wait_until
from tests.support.sandbox import notification_from
from tests.support.stack import unique_domain
from tests.unit.conftest import Pax8World, RecordingPublisher, ServicesFactory
from vendors.base import Order, Provisioned, VendorAdapter
from vendors.errors import (
    PermanentVendorError,
    TransientVendorError,
    VendorContractError,
    VendorMisconfigured,
    VendorNoAnswer,
)
from vendors.loader import Adapters


class Scripted(VendorAdapter):
    """Answers each call with the next item of ``script`` (an outcome or an exception)."""

    def __init__(self, script: list[Any], deadline: float | None = None) -> None:
        super().__init__(None)
        self.script = script
        self.deadline = deadline
        self.calls: list[Order] = []

    @property
    def call_deadline_seconds(self) -> float | None:
        return self.deadline

    def handle(self, order: Order) -> Provisioned:
        self.calls.append(order)
        answer = self.script.pop(0) if self.script else Provisioned(subscription_id="sub-1")
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, Provisioned)
        return answer


class One(Adapters):
    """Every order goes to one adapter instance."""

    def __init__(self, settings: Settings, adapter: VendorAdapter) -> None:
        super().__init__(settings)
        self.adapter = adapter

    def for_route(self, route: str, simulation: bool) -> VendorAdapter:
        return self.adapter


def order_at_pax8(pax8: Pax8World, services: Services, **request: Any) -> tuple[str, str, str]:
    """A request Pax8 holds, recorded in the ledger as its webhook would: (id, detail, attempt)."""
    request = {"type": "NetNew", "companyDomain": unique_domain(), **request}
    (created,) = pax8.bulk(1, order={"provisionRequest": request})
    body = notification_from(pax8.request(created["id"]))
    notice, _ = parse_pax8(json.dumps(body).encode())
    intake = accept(services.ledger, services.publisher, notice, services.settings.routes)
    assert intake.action is Accepted.PROVISION
    return created["id"], created["detailId"], created["attemptId"]


def finished(services: Services, request_id: str, detail_id: str) -> Ref:
    """Claim and finish the order as a worker would (the vendor said Success); its ref."""
    ref = Ref(Scope.PAX8, request_id)
    assert services.ledger.claim(ref, detail_id, "t", 60, 5).action == "claimed"
    services.ledger.finish(ref, detail_id, "t", "Success", {}, {})
    return ref


def scripted(
    make_services: ServicesFactory, *script: Any, deadline: float | None = None, **settings: Any
) -> Services:
    services = make_services(**settings)
    adapter = Scripted(list(script), deadline)
    services._adapters = One(services.settings, adapter)  # noqa: SLF001
    return services


def adapter_of(services: Services) -> Scripted:
    adapter = services.adapters.for_order(False)
    assert isinstance(adapter, Scripted)
    return adapter


def test_fulfil_provisions_once_and_posts_success(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = make_services()
    request_id, detail_id, attempt_id = order_at_pax8(pax8, services)

    outcome = fulfil(services, Ref(Scope.PAX8, request_id), detail_id, "task-1")

    assert outcome.next is Next.DONE and outcome.state is State.REPORTED
    (result,) = pax8.results(request_id)
    assert result["status"] == "Success" and result["provisionAttemptId"] == attempt_id
    assert result["externalProvisionerSubscriptionId"].startswith("sub-")
    # The same task again (a redelivery) provisions nothing and posts nothing.
    assert fulfil(services, Ref(Scope.PAX8, request_id), detail_id, "task-1").next is Next.DONE
    assert len(pax8.results(request_id)) == 1


def test_a_vendor_refusal_is_a_fail_with_its_message(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = scripted(make_services, PermanentVendorError("The domain is taken."))
    request_id, detail_id, _ = order_at_pax8(pax8, services)

    outcome = fulfil(services, Ref(Scope.PAX8, request_id), detail_id, "task-1")

    assert outcome.next is Next.DONE and outcome.state is State.REPORTED
    (result,) = pax8.results(request_id)
    assert result["status"] == "Fail" and result["errorMessage"] == "The domain is taken."


def test_a_transient_vendor_error_is_retried_with_backoff_until_the_budget_is_spent(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    busy = TransientVendorError("vendor busy", retry_after=0.5)
    services = scripted(make_services, busy, busy, busy, provision_max_retries=2)
    request_id, detail_id, _ = order_at_pax8(pax8, services)

    first = provision(services, Ref(Scope.PAX8, request_id), detail_id, "task-1")
    assert first.next is Next.RETRY and first.countdown >= 0.5  # Retry-After is a floor
    assert services.ledger.get(request_id).state is State.QUEUED  # type: ignore[union-attr]
    assert provision(services, Ref(Scope.PAX8, request_id), detail_id, "task-1").next is Next.RETRY
    last = provision(services, Ref(Scope.PAX8, request_id), detail_id, "task-1")

    assert last.next is Next.DEAD and "after 2 retries" in last.reason
    record = services.ledger.get(request_id)
    assert record is not None and record.state is State.DEAD and record.retries == 2
    assert pax8.results(request_id) == []  # nothing reported for a dead order


def test_an_adapter_bug_is_dead_at_once_with_the_exception(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = scripted(make_services, KeyError("tenant_id"))
    request_id, detail_id, _ = order_at_pax8(pax8, services)

    outcome = fulfil(services, Ref(Scope.PAX8, request_id), detail_id, "task-1")

    assert outcome.next is Next.DEAD and isinstance(outcome.error, KeyError)
    assert "adapter error: KeyError" in outcome.reason
    assert pax8.results(request_id) == []


def test_a_claim_held_by_another_live_task_is_left_alone(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = make_services()
    request_id, detail_id, _ = order_at_pax8(pax8, services)
    assert (
        services.ledger.claim(Ref(Scope.PAX8, request_id), detail_id, "other", 60, 5).action
        == "claimed"
    )

    outcome = provision(services, Ref(Scope.PAX8, request_id), detail_id, "task-1")

    assert outcome.next is Next.DONE and "busy" in outcome.reason


def test_a_call_cut_short_is_not_repeated_before_its_deadline(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = scripted(make_services, deadline=0.8)
    request_id, detail_id, _ = order_at_pax8(pax8, services)
    ref = Ref(Scope.PAX8, request_id)
    # The task's first delivery claimed and called, then its pool child was killed: the
    # same task id is redelivered at once while the vendor may still be at work.
    policies = services.policies
    claimed = services.ledger.claim(
        ref, detail_id, "task-1", policies.lease_seconds, policies.max_claims, call_seconds=0.8
    )
    assert claimed.action == "claimed"

    waiting = provision(services, ref, detail_id, "task-1")

    assert waiting.next is Next.RETRY and 0 < waiting.countdown <= 0.8
    assert adapter_of(services).calls == []  # no second call while the first may run
    record = services.ledger.get(ref)
    assert record is not None and record.state is State.PROVISIONING and record.claims == 1
    wait_until(lambda: time.time() > record.call_until, 10)
    done = fulfil(services, ref, detail_id, "task-1")
    assert done.next is Next.DONE and done.state is State.REPORTED
    assert len(adapter_of(services).calls) == 1 and len(pax8.results(request_id)) == 1


class SoftLimit(Exception):
    """Stands in for Celery's SoftTimeLimitExceeded (a ``transient`` of the task)."""


@pytest.mark.parametrize(
    ("error", "deadline", "waits"),
    [
        (VendorNoAnswer("vendor timed out"), 30.0, True),
        (SoftLimit(), None, True),  # a Python adapter: the task's hard limit (40 s here)
        (TransientVendorError("vendor answered 503", retry_after=0.2), 30.0, False),
    ],
)
def test_a_retry_after_no_answer_waits_for_the_calls_deadline(
    make_services: ServicesFactory,
    pax8: Pax8World,
    error: Exception,
    deadline: float | None,
    waits: bool,
) -> None:
    services = scripted(
        make_services,
        error,
        deadline=deadline,
        task_soft_time_limit_seconds=30,
        task_time_limit_seconds=40,
    )
    request_id, detail_id, _ = order_at_pax8(pax8, services)
    ref = Ref(Scope.PAX8, request_id)

    outcome = provision(services, ref, detail_id, "task-1", transient=(SoftLimit,))

    assert outcome.next is Next.RETRY
    record = services.ledger.get(ref)
    assert record is not None and record.state is State.QUEUED and record.retries == 1
    if waits:
        # The call may still be running at the vendor until its deadline: the retry waits.
        expected = deadline or 40.0
        assert expected - 2 < outcome.countdown <= expected
        assert record.call_until > time.time() + expected - 2
        again = provision(services, ref, detail_id, "task-1", transient=(SoftLimit,))
        assert again.next is Next.RETRY and again.countdown > expected - 2  # still waiting
        assert len(adapter_of(services).calls) == 1
    else:
        # The vendor answered: its call is over, the backoff alone decides.
        assert outcome.countdown <= 1.0 and record.call_until == 0


def test_a_key_reused_with_another_body_is_a_fail_and_an_alert(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    bug = VendorContractError("Idempotency key reused with other data: a bug to report.")
    services = scripted(make_services, bug)
    request_id, detail_id, _ = order_at_pax8(pax8, services)

    outcome = fulfil(services, Ref(Scope.PAX8, request_id), detail_id, "task-1")

    assert outcome.next is Next.DONE and outcome.state is State.REPORTED
    assert outcome.alert and outcome.error is bug  # the task sends it to Sentry
    (result,) = pax8.results(request_id)
    assert result["status"] == "Fail" and result["errorMessage"] == bug.message


def test_a_misconfigured_vendor_holds_the_order_alerts_once_then_it_goes_through(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    moved = VendorMisconfigured("redirect to https://new.test/: set VENDOR_HTTP_URL", "redirect")
    services = scripted(make_services, moved, moved, provision_max_retries=5)
    request_id, detail_id, _ = order_at_pax8(pax8, services)
    ref = Ref(Scope.PAX8, request_id)

    first = fulfil(services, ref, detail_id, "task-1")
    assert first.next is Next.RETRY and first.alert and first.error is moved
    record = services.ledger.get(request_id)
    assert record is not None and record.state is State.QUEUED and record.error == moved.message
    again = fulfil(services, ref, detail_id, "task-1")
    assert again.next is Next.RETRY and not again.alert  # the same problem: no second alert
    assert pax8.results(request_id) == []  # held: neither Success nor Fail
    fixed = fulfil(services, ref, detail_id, "task-1")  # the fix is in: the vendor answers
    assert fixed.next is Next.DONE and fixed.state is State.REPORTED
    assert [r["status"] for r in pax8.results(request_id)] == ["Success"]


def test_a_report_refused_while_the_attempt_is_issued_is_retried_then_posted(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = make_services()
    request_id, detail_id, attempt_id = order_at_pax8(pax8, services)
    finished(services, request_id, detail_id)
    # Pax8 has not counted the attempt yet (its 202 is still on the way): it is Issued.
    store = pax8.app.extensions["pax8_sandbox"].store
    store.set_attempt_status(attempt_id, "Issued", None)

    waiting = report(services, Ref(Scope.PAX8, request_id), owner="t")

    assert waiting.next is Next.RETRY and waiting.countdown > 0
    assert [a.status for a in services.ledger.attempts(request_id)] == [AttemptState.PENDING]
    events = [h["event"] for h in services.ledger.history(request_id)]
    assert events[-1] == "result-not-acknowledged"
    store.set_attempt_status(attempt_id, "Acknowledged", None)
    done = report(services, Ref(Scope.PAX8, request_id), owner="t")
    assert done.next is Next.DONE and done.state is State.REPORTED
    assert [r["provisionAttemptId"] for r in pax8.results(request_id)] == [attempt_id]


def test_a_report_refused_for_a_failed_attempt_is_settled_with_the_reason(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = make_services()
    request_id, detail_id, attempt_id = order_at_pax8(pax8, services)
    finished(services, request_id, detail_id)
    pax8.app.extensions["pax8_sandbox"].store.set_attempt_status(attempt_id, "Failed", "lost")

    outcome = report(services, Ref(Scope.PAX8, request_id), owner="t")

    assert outcome.next is Next.DONE and outcome.state is State.REPORTED
    assert [a.status for a in services.ledger.attempts(request_id)] == [AttemptState.REJECTED]
    (entry,) = [h for h in services.ledger.history(request_id) if h["event"] == "result-rejected"]
    assert "is Failed at Pax8" in entry["note"]


def test_pax8_errors_on_the_result_post_retry_within_the_budget_then_defer(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = make_services(report_max_retries=2)
    request_id, detail_id, _ = order_at_pax8(pax8, services)
    finished(services, request_id, detail_id)
    pax8.fault(method="POST", path="/v2/provision-requests/*/results", action="error", status=503)

    outcomes = [report(services, Ref(Scope.PAX8, request_id), owner="t") for _ in range(3)]

    assert [o.next for o in outcomes] == [Next.RETRY, Next.RETRY, Next.DONE]
    assert "deferred" in outcomes[-1].reason
    record = services.ledger.get(request_id)
    # Left for reconciliation, with a fresh budget for its next try.
    assert record is not None and record.state is State.PROVISIONED and record.report_retries == 0


def test_refused_credentials_leave_the_outcome_for_later_and_alert(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = make_services()
    request_id, detail_id, _ = order_at_pax8(pax8, services)
    finished(services, request_id, detail_id)
    pax8.fault(method="POST", path="/v2/provision-requests/*/results", action="error", status=401)

    outcome = report(services, Ref(Scope.PAX8, request_id), owner="t")

    assert outcome.next is Next.DONE and outcome.alert and outcome.error is not None
    assert services.ledger.get(request_id).state is State.PROVISIONED  # type: ignore[union-attr]


def test_a_report_lock_held_elsewhere_is_retried_shortly(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = make_services()
    request_id, detail_id, _ = order_at_pax8(pax8, services)
    finished(services, request_id, detail_id)
    services.redis.set(
        services.ledger.keys.report_lock(Ref(Scope.PAX8, request_id)),
        "someone-else",
        px=60000,
    )

    outcome = report(services, Ref(Scope.PAX8, request_id), owner="t")

    assert outcome.next is Next.RETRY and outcome.countdown == services.policies.busy_countdown


def test_fulfil_hands_a_report_pax8_cannot_take_to_the_report_task(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    publisher = RecordingPublisher()
    services = make_services(publisher=publisher)
    request_id, detail_id, _ = order_at_pax8(pax8, services)
    pax8.fault(method="POST", path="/v2/provision-requests/*/results", action="error", status=500)

    outcome = fulfil(services, Ref(Scope.PAX8, request_id), detail_id, "task-1")

    assert outcome.next is Next.DONE and "handed to fulfillment.report" in outcome.reason
    assert publisher.reported == [request_id]
    (countdown,) = publisher.countdowns
    assert countdown is not None and countdown > 0


@pytest.mark.parametrize("attempt", ["same", "new"])
def test_accept_of_a_redelivery_provisions_nothing_again(
    make_services: ServicesFactory, pax8: Pax8World, attempt: str
) -> None:
    publisher = RecordingPublisher()
    services = make_services(publisher=publisher)
    request_id, detail_id, attempt_id = order_at_pax8(pax8, services)
    fulfil(services, Ref(Scope.PAX8, request_id), detail_id, "task-1")
    body = notification_from(pax8.request(request_id))
    if attempt == "new":
        body["provisionAttempt"]["id"] = "a-new-attempt"
    notice, _ = parse_pax8(json.dumps(body).encode())

    intake = accept(services.ledger, publisher, notice, services.settings.routes)

    expected = Accepted.DUPLICATE if attempt == "same" else Accepted.REPORT
    assert intake.action is expected and intake.previous is State.REPORTED
    assert len(publisher.provisioned) == 1  # only the first notification's
    assert publisher.reported == ([] if attempt == "same" else [request_id])


@pytest.mark.parametrize(("refusals", "posted"), [(1, True), (2, False)])
def test_a_refusal_for_an_acknowledged_attempt_is_posted_once_more(
    make_services: ServicesFactory, pax8: Pax8World, refusals: int, posted: bool
) -> None:
    """Pax8 may count the attempt between our POST and our look-up: one more POST then;
    refused again while acknowledged, the refusal is final."""
    services = make_services()
    request_id, detail_id, _ = order_at_pax8(pax8, services)
    finished(services, request_id, detail_id)
    pax8.fault(
        method="POST", path="/v2/provision-requests/*/results", action="error", status=400,
        times=refusals,
    )  # fmt: skip

    outcome = report(services, Ref(Scope.PAX8, request_id), owner="t")

    assert outcome.next is Next.DONE and outcome.state is State.REPORTED
    assert len(pax8.results(request_id)) == (1 if posted else 0)
    (attempt,) = services.ledger.attempts(request_id)
    assert attempt.status is (AttemptState.REPORTED if posted else AttemptState.REJECTED)
