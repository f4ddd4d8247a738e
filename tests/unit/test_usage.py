"""Usage reporting in-process: periods, batches, the registry, a day's run, retries, the
overdue check, and the sandbox's Usage API (the semantics the process tests rely on).

A real redis-server and the sandbox's Pax8 in-process (``conftest``); the usage clock is a
file the test writes, as the process tests do.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from fulfillment.ledger.refs import Ref, Scope
from fulfillment.services import Services
from fulfillment.usage import periods
from fulfillment.usage.batches import batches
from fulfillment.usage.context import UsageContext, usage_context
from fulfillment.usage.daily import tick
from fulfillment.usage.models import JobOutcome
from fulfillment.usage.overdue import check
from fulfillment.usage.posting import TooLate, post_jobs, post_now
from fulfillment.workflow.provisioning import fulfil
from pax8.auth import Credentials
from pax8.models import ProvisionResult, ResultStatus
from pax8.usage import USAGE_AUDIENCE, UsageClient, UsageLine, UsageTarget
from tests.support.procs import wait_until
from tests.unit.conftest import PAX8, Pax8World, ServicesFactory
from tests.unit.test_fulfilment import order_at_pax8
from vendors.example import ExampleAdapter
from vendors.usage import UsageQuery

MARCH = "2031-03"
SUB_A, SUB_R = str(uuid.uuid4()), str(uuid.uuid4())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def line(key: str, quantity: float, product: str = "p-1", unit: str = "GB") -> UsageLine:
    return UsageLine(
        summary_key=key,
        summary_display_name=f"name of {key}",
        quantity=quantity,
        product_id=product,
        unit_of_measurement=unit,
    )


# -- periods and batches ---------------------------------------------------------------------


def test_periods_cutoff_and_what_a_run_posts() -> None:
    assert periods.cutoff(MARCH) == at("2031-04-03T00:00:00")
    assert periods.deadline(MARCH, 12) == at("2031-04-01T12:00:00")
    assert periods.previous("2031-01") == "2030-12"
    assert periods.end("2031-12") == at("2032-01-01T00:00:00")
    assert periods.periods_to_post(at("2031-03-15T02:00:00")) == [MARCH]
    assert periods.periods_to_post(at("2031-04-01T02:00:00")) == [MARCH, "2031-04"]
    assert periods.periods_to_post(at("2031-04-02T23:59:59")) == [MARCH, "2031-04"]
    assert periods.periods_to_post(at("2031-04-03T00:00:00")) == ["2031-04"]
    with pytest.raises(ValueError):
        periods.check_period("2031-13")


def test_batches_keep_50_lines_overwrite_each_summary_first_then_append() -> None:
    big = [line("big", i) for i in range(120)]
    small = [line(f"s{i}", i) for i in range(3)]
    plan = batches([*small, *big])
    assert [len(b.lines) for b in plan] == [50, 50, 23]
    assert [b.overwrite for b in plan] == [True, False, False]
    # Every summary's first lines are in an overwrite batch, before any append.
    assert {x.summary_key for x in plan[0].lines} == {"s0", "s1", "s2", "big"}
    assert {x.summary_key for x in plan[1].lines + plan[2].lines} == {"big"}
    # A summary that fits no more goes to a batch of its own; small ones share.
    again = batches([*[line("a", i) for i in range(30)], *[line("b", i) for i in range(30)]])
    assert [(len(b.lines), b.overwrite) for b in again] == [(30, True), (30, True)]
    assert sorted(x.quantity for b in plan for x in b.lines if x.summary_key == "big") == list(
        range(120)
    )


# -- the world: a worker's services on the in-process Pax8, a clock file --------------------


@dataclass
class World:
    pax8: Pax8World
    services: Services
    clock_file: Path

    def set_now(self, text: str) -> None:
        self.clock_file.write_text(text)
        self.pax8.app.extensions["pax8_sandbox"].usage.clock = lambda: at(text)

    @property
    def context(self) -> UsageContext:
        return usage_context(self.services)

    def provision(self, **request: Any) -> str:
        sub = request.setdefault("subscriptionId", str(uuid.uuid4()))
        request_id, detail_id, _ = order_at_pax8(self.pax8, self.services, **request)
        fulfil(self.services, Ref(Scope.PAX8, request_id), detail_id, "task-1")
        return str(sub)

    def billed(self, sub: str, period: str) -> dict[str, Any]:
        answer = self.pax8.control(
            "GET", f"/usage?environment=production&billingPeriod={period}&subscriptionId={sub}"
        )
        return dict(answer["subscriptions"][sub].get(period, {}))

    def stats(self) -> dict[str, int]:
        return dict(self.pax8.control("GET", "/usage")["stats"])

    def source(self, sub: str, period: str, as_of: datetime) -> list[UsageLine]:
        record = self.context.store.subscription(Scope.PAX8, sub)
        assert record is not None
        query = UsageQuery(
            subscription_id=sub, billing_period=period, as_of=as_of, ended_at=record.ended_at
        )
        return ExampleAdapter(self.services.settings, self.services.redis).usage(query)

    def run_day(self, text: str) -> dict[str, int]:
        """One tick at ``text`` and every job it hands out, retries included, in-process."""
        self.set_now(text)
        result = tick(self.context)
        queue = [(result.day, chunk) for chunk in result.chunks]
        totals: dict[str, int] = {}
        while queue:
            day, jobs = queue.pop(0)
            done = post_jobs(self.context, day, jobs, token="t-" + jobs[0], sleep=lambda _: None)
            for key, value in done.counts().items():
                totals[key] = totals.get(key, 0) + value
            queue += [(day, [job]) for job, _ in done.retries]
        return totals


def billed_totals(billed: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (key, x["productId"], x["unitOfMeasurement"], x["quantity"])
        for key, summary in billed.items()
        for x in summary["lines"]
    )


def source_totals(lines: list[UsageLine]) -> list[tuple[Any, ...]]:
    return sorted((x.summary_key, x.product_id, x.unit_of_measurement, x.quantity) for x in lines)


@pytest.fixture
def world(make_services: ServicesFactory, pax8: Pax8World, tmp_path: Path) -> Iterator[World]:
    clock_file = tmp_path / "clock"
    usage = UsageClient(
        f"{PAX8}/v2",
        f"{PAX8}/v1/token",
        production=Credentials("sandbox-client", "sandbox-secret"),
        simulation=Credentials("sandbox-sim-client", "sandbox-sim-secret"),
        transport=httpx.WSGITransport(app=pax8.app),
        retries=0,
    )
    services = make_services(
        usage_clock_file=str(clock_file), usage_max_retries=3, usage_posts_per_minute=100_000
    )
    services._usage = usage
    out = World(pax8, services, clock_file)
    out.set_now("2031-03-01T00:30:00")
    yield out
    usage.close()


# -- the registry ----------------------------------------------------------------------------


def test_provisioning_notes_subscriptions_but_not_partner_enrollments(world: World) -> None:
    store = world.context.store
    sub = world.provision(quantity=3)
    noted = store.subscription(Scope.PAX8, sub)
    assert noted is not None and noted.ended_at is None and noted.quantity == 3
    assert noted.activated_at == at("2031-03-01T00:30:00")
    enrollment = world.provision(type="PartnerEnrollment", partnerId=str(uuid.uuid4()))
    assert store.subscription(Scope.PAX8, enrollment) is None
    assert [s.id for s in store.subscriptions()] == [sub]
    world.set_now("2031-03-10T09:00:00")
    world.provision(type="Deprovision", subscriptionId=sub)
    ended = store.subscription(Scope.PAX8, sub)
    assert ended is not None and ended.ended_at == at("2031-03-10T09:00:00")
    assert ended.active_in(MARCH) and not ended.active_in("2031-04")


# -- a day's run -----------------------------------------------------------------------------


def test_a_days_run_posts_each_subscription_once_and_pax8_holds_the_sources_totals(
    world: World,
) -> None:
    subs = [world.provision(quantity=q) for q in (2, 60)]
    counts = world.run_day("2031-03-05T03:00:00")
    # 2 lines for the first; 2 + 60 device lines (a summary of 60: 2 posts) for the second.
    assert counts == {"posts": 3, "lines": 64, "rate_limited": 0, "retries": 0, "posted": 2}
    for sub in subs:
        expected = source_totals(world.source(sub, MARCH, at("2031-03-05T03:00:00")))
        assert billed_totals(world.billed(sub, MARCH)) == expected
    # The same day again: nothing new is planned, nothing posted twice.
    assert world.run_day("2031-03-05T04:00:00") == {}
    assert world.stats()["posts"] == 3
    run = world.context.store.run("2031-03-05")
    assert run is not None and run.state == "done" and run.counts["posted"] == 2
    # Every post is recorded with the lines sent and Pax8's answer.
    posts = world.context.store.posts(Scope.PAX8, subs[1], MARCH)
    assert [(p["batch"], p["overwrite"], len(p["lines"]), p["status"]) for p in posts] == [
        (1, True, 50, 200),  # the tenant's 2 lines and 48 devices
        (2, False, 12, 200),
    ]


def test_closing_totals_on_the_first_and_second_then_the_period_is_left(world: World) -> None:
    sub = world.provision(quantity=2)
    world.run_day("2031-03-31T03:00:00")
    counts = world.run_day("2031-04-01T03:00:00")
    assert counts["posted"] == 2  # March's closing totals and April's first
    closing = source_totals(world.source(sub, MARCH, at("2031-04-30T00:00:00")))
    assert billed_totals(world.billed(sub, MARCH)) == closing
    assert world.run_day("2031-04-02T03:00:00")["posted"] == 2
    assert world.run_day("2031-04-03T03:00:00")["posted"] == 1  # March is closed at Pax8


def test_a_500_after_an_append_is_posted_again_from_the_overwrite(world: World) -> None:
    sub = world.provision(quantity=60)
    world.run_day("2031-03-04T03:00:00")
    # The append batch is stored, then Pax8 answers 500: posting only it again would double it.
    world.pax8.fault(method="POST", path="/v2/usage/lines", action="error_after", times=1)
    world.set_now("2031-03-05T03:00:00")
    result = tick(world.context)
    (chunk,) = result.chunks
    first = post_jobs(world.context, result.day, chunk, token="t1", sleep=lambda _: None)
    assert first.counts()["retries"] == 1
    second = post_jobs(world.context, result.day, chunk, token="t2", sleep=lambda _: None)
    assert second.counts()["posted"] == 1
    expected = source_totals(world.source(sub, MARCH, at("2031-03-05T03:00:00")))
    assert billed_totals(world.billed(sub, MARCH)) == expected
    statuses = [p["status"] for p in world.context.store.posts(Scope.PAX8, sub, MARCH)]
    assert statuses[-3:] == [500, 200, 200]
    # The 500 hit the first batch of the day (the overwrite): the retry started over.


def test_a_429_resumes_at_the_refused_batch(world: World) -> None:
    sub = world.provision(quantity=60)
    world.pax8.fault(
        method="POST", path="/v2/usage/lines", action="error", status=429, retry_after=1, times=1
    )
    world.set_now("2031-03-02T03:00:00")
    result = tick(world.context)
    first = post_jobs(world.context, result.day, result.chunks[0], "t1", sleep=lambda _: None)
    (retry,) = first.retries
    assert retry[1] >= 1.0 and first.counts()["rate_limited"] == 1
    # Tried again before Retry-After has passed: the client holds off, nothing is sent
    # or recorded, and the job is handed back again for the time left.
    early = post_jobs(world.context, result.day, [retry[0]], "t2", sleep=lambda _: None)
    assert early.retries and early.counts()["posts"] == 0
    client = world.context.client
    assert isinstance(client, UsageClient)
    wait_until(lambda: client.held_for() == 0, 5, message="the hold-off never ended")
    post_jobs(world.context, result.day, [retry[0]], "t3", sleep=lambda _: None)
    posts = world.context.store.posts(Scope.PAX8, sub, MARCH)
    assert [(p["batch"], p["status"]) for p in posts] == [(1, 429), (1, 200), (2, 200)]
    expected = source_totals(world.source(sub, MARCH, at("2031-03-02T03:00:00")))
    assert billed_totals(world.billed(sub, MARCH)) == expected


def test_retries_end_in_failed_and_the_overdue_check_alerts_once(world: World) -> None:
    sub = world.provision(quantity=1)
    world.run_day("2031-03-31T03:00:00")
    world.pax8.fault(method="POST", path="/v2/usage/lines", action="error", status=503)
    counts = world.run_day("2031-04-01T03:00:00")
    assert counts["failed"] == 2 and counts["retries"] == 6  # 3 retries each, then failed
    context = world.context
    before = check(context, at("2031-04-01T11:59:00"))
    assert before.overdue == [] and context.store.overdue()[2] == {
        Scope.PAX8: 0,
        Scope.PAX8_SIMULATION: 0,
    }
    late = check(context, at("2031-04-01T12:00:00"))
    assert [o.subscription.id for o in late.overdue] == [sub]
    assert list(late.alert) == [Scope.PAX8]
    assert context.store.overdue()[2][Scope.PAX8] == 1
    assert check(context, at("2031-04-01T12:10:00")).alert == {}  # once per period
    world.pax8.control("DELETE", "/faults", json={})
    world.run_day("2031-04-02T03:00:00")
    assert check(context, at("2031-04-02T03:10:00")).overdue == []
    assert context.store.overdue()[2][Scope.PAX8] == 0


def test_post_by_hand_and_the_local_refusal_after_the_cutoff(world: World) -> None:
    sub = world.provision(quantity=2)
    world.set_now("2031-04-02T20:00:00")
    result = post_now(world.context, Scope.PAX8, sub, MARCH, token="cli-1")
    assert result.outcome is JobOutcome.POSTED and result.posts == 1
    before = world.stats()["posts"]
    world.set_now("2031-04-03T00:00:00")
    with pytest.raises(TooLate, match="2031-04-03T00:00:00Z"):
        post_now(world.context, Scope.PAX8, sub, MARCH, token="cli-2")
    assert world.stats()["posts"] == before


# -- the sandbox's Usage API -----------------------------------------------------------------


def usage_token(pax8: Pax8World, simulation: bool = False) -> str:
    client = pax8.app.test_client()
    body = {
        "client_id": "sandbox-sim-client" if simulation else "sandbox-client",
        "client_secret": "sandbox-sim-secret" if simulation else "sandbox-secret",
        "audience": USAGE_AUDIENCE,
    }
    answer = client.post("/v1/token", json=body)
    assert answer.status_code == 200 and answer.get_json()["scope"].endswith(":usage")
    return str(answer.get_json()["access_token"])


def test_the_sandbox_plays_the_usage_api(pax8: Pax8World) -> None:
    sandbox = pax8.app.extensions["pax8_sandbox"]
    sandbox.usage.clock = lambda: at("2031-03-10T10:00:00")
    (created,) = pax8.bulk(1, order={"provisionRequest": {"subscriptionId": SUB_A}})
    client = pax8.app.test_client()
    auth = {"Authorization": f"Bearer {usage_token(pax8)}"}

    def post(body: Any, **params: str) -> Any:
        query = {"subscriptionId": SUB_A, "billingPeriod": MARCH, **params}
        return client.post("/v2/usage/lines", json=body, query_string=query, headers=auth)

    wire = [line("k", 1).model_dump(by_alias=True), line("k", 2, "p-2").model_dump(by_alias=True)]
    assert post(wire).status_code == 200
    assert post(wire[:1], overwriteSameDayUsage="false").status_code == 200  # appended
    lines = client.get(
        "/v2/usage/lines",
        query_string={"subscriptionId": SUB_A, "billingPeriod": MARCH, "summaryKey": "k"},
        headers=auth,
    ).get_json()
    assert [x["quantity"] for x in lines["content"]] == [1, 2, 1]
    assert post(wire[1:]).status_code == 200  # overwritten
    billed = sandbox.usage.billed("production", SUB_A, MARCH)
    assert [x["quantity"] for x in billed["k"]["lines"]] == [2]
    # The limits, with Pax8's kind of message naming the field.
    too_many = post([line("k", i).model_dump(by_alias=True) for i in range(51)])
    assert too_many.status_code == 400 and "at most 50" in too_many.get_json()["message"]
    long_key = post([{**wire[0], "summaryKey": "x" * 256}])
    assert long_key.status_code == 400
    assert long_key.get_json()["details"]["field"] == "[0].summaryKey"
    assert post(wire, billingPeriod="2031-3").status_code == 400
    assert post(wire, billingPeriod="2031-04").status_code == 400  # not begun
    assert post(wire, subscriptionId="nope").status_code == 404
    # A provisioning token is not a usage token, nor the other way round.
    other = {"Authorization": f"Bearer {json.loads(json.dumps(pax8.client.tokens(False).token()))}"}
    assert client.post("/v2/usage/lines", json=wire, headers=other).status_code == 401
    assert client.get("/v2/provision-requests", headers=auth).status_code == 401
    # The other environment does not see this subscription.
    sim = {"Authorization": f"Bearer {usage_token(pax8, simulation=True)}"}
    query = {"subscriptionId": SUB_A, "billingPeriod": MARCH}
    assert (
        client.post("/v2/usage/lines", json=wire, query_string=query, headers=sim).status_code
        == 404
    )
    # The vendor's own id names the subscription too, once a Success result saved it.
    request = pax8.request(created["id"])
    pax8.client.create_result(
        created["id"],
        ProvisionResult(
            provision_attempt_id=request["attempts"][-1]["id"],
            status=ResultStatus.SUCCESS,
            external_provisioner_subscription_id="vendor-sub-a",
        ),
    )
    by_external = client.post(
        "/v2/usage/lines",
        json=wire[:1],
        query_string={"externalSubscriptionId": "vendor-sub-a", "billingPeriod": MARCH},
        headers=auth,
    )
    assert by_external.status_code == 200
    assert [
        x["quantity"] for x in sandbox.usage.billed("production", SUB_A, MARCH)["k"]["lines"]
    ] == [1]
    both = post(wire, externalSubscriptionId="vendor-sub-a")
    assert both.status_code == 400 and "OR" in both.get_json()["message"]
    # The cutoff: midnight ending the 2nd of the next month.
    sandbox.usage.clock = lambda: at("2031-04-02T23:59:59")
    assert post(wire).status_code == 200
    sandbox.usage.clock = lambda: at("2031-04-03T00:00:00")
    closed = post(wire)
    assert (
        closed.status_code == 400 and "can no longer be submitted" in closed.get_json()["message"]
    )
    assert created["id"]


def test_the_sandbox_limits_the_rate_with_429_and_retry_after(pax8: Pax8World) -> None:
    sandbox = pax8.app.extensions["pax8_sandbox"]
    sandbox.usage.rate_limit, sandbox.usage.clock = 3, lambda: at("2031-03-10T10:00:00")
    pax8.bulk(1, order={"provisionRequest": {"subscriptionId": SUB_R}})
    client = pax8.app.test_client()
    auth = {"Authorization": f"Bearer {usage_token(pax8)}"}
    query = {"subscriptionId": SUB_R, "billingPeriod": MARCH}
    wire = [line("k", 1).model_dump(by_alias=True)]
    codes = [
        client.post("/v2/usage/lines", json=wire, query_string=query, headers=auth)
        for _ in range(4)
    ]
    assert [c.status_code for c in codes] == [200, 200, 200, 429]
    assert int(codes[-1].headers["Retry-After"]) >= 1


def test_the_usage_client_asks_for_a_usage_token_and_names_the_subscription() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(200, json=[])

    client = UsageClient(
        "http://p/v2",
        "http://p/v1/token",
        production=Credentials("id", "secret"),
        transport=httpx.MockTransport(handler),
    )
    target = UsageTarget(external_subscription_id="vendor-sub-1")
    answer = client.post_lines(target, MARCH, [line("k", 1)], overwrite=False)
    assert answer.status == 200
    assert json.loads(seen[0].content)["audience"] == "api://usage"
    params = dict(seen[1].url.params)
    assert params == {
        "externalSubscriptionId": "vendor-sub-1",
        "billingPeriod": MARCH,
        "overwriteSameDayUsage": "false",
    }
    assert json.loads(seen[1].content)[0]["summaryKey"] == "k"
    with pytest.raises(ValueError):
        UsageTarget()


def test_a_run_left_quiet_by_a_crash_is_handed_out_again_and_never_planned_twice(
    world: World,
) -> None:
    subs = [world.provision(quantity=1) for _ in range(3)]
    world.set_now("2031-03-06T03:00:00")
    first = tick(world.context)
    assert first.planned and first.jobs == 3
    # The tasks carrying its jobs were lost (a broker restored without them, say).
    again = tick(world.context)
    assert not again.planned and again.chunks == [] and "3 jobs pending" in again.reason
    store = world.context.store
    store.redis.hset(store.keys.day("2031-03-06"), "last_activity", 0)  # quiet past the lease
    resumed = tick(world.context)
    assert resumed.resumed and sorted(j for c in resumed.chunks for j in c) == store.pending(
        "2031-03-06"
    )
    post_jobs(world.context, resumed.day, resumed.chunks[0], "t-resumed", sleep=lambda _: None)
    assert store.run("2031-03-06").state == "done"  # type: ignore[union-attr]
    assert sorted(world.billed(s, MARCH) != {} for s in subs) == [True, True, True]
    assert world.stats()["posts"] == 3
