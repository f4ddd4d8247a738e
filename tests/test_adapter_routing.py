"""Adapters as the worker uses them: routing by simulation flag, the http adapter end to end,
a vendor's own ``package.module:Class``, and an adapter bug (dead, nothing reported)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.adapters import calls
from tests.support.procs import wait_until
from tests.support.stack import SIM_SECRET, Stack
from tests.support.vendor_stub import Script, VendorStub


@pytest.fixture(scope="module")
def vendor() -> Iterator[VendorStub]:
    with VendorStub() as stub:
        yield stub


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, vendor: VendorStub) -> Iterator[Stack]:
    running = Stack(
        tmp_path_factory.mktemp("routing"),
        env={
            "VENDOR_ADAPTER": "example",
            "SIMULATION_VENDOR_ADAPTER": "http",
            "VENDOR_HTTP_URL": vendor.url,
            "VENDOR_HTTP_TIMEOUT_SECONDS": "3",
        },
    )
    try:
        running.start_receiver()
        yield running
    finally:
        running.stop()


def test_simulated_orders_go_to_the_simulation_adapter(stack: Stack, vendor: VendorStub) -> None:
    worker = stack.start_worker("worker-routing")
    try:
        production = stack.sandbox_notification()
        simulated = stack.sandbox_notification(simulation=True)
        assert stack.post_webhook(production).status_code == 202
        assert stack.post_webhook(simulated, secret=SIM_SECRET).status_code == 202
        prod = stack.wait_state(production["provisionRequest"]["id"], "reported")
        sim = stack.wait_state(simulated["provisionRequest"]["id"], "reported")
        assert prod.external_ids["externalProvisionerSubscriptionId"].startswith("sub-")
        assert sim.external_ids["externalProvisionerSubscriptionId"].startswith("vsub-")
        seen = {call.order["provisionRequest"]["id"] for call in vendor.calls}
        assert simulated["provisionRequest"]["id"] in seen
        assert production["provisionRequest"]["id"] not in seen
    finally:
        worker.stop()


def test_http_vendor_503_then_ok_and_400(stack: Stack, vendor: VendorStub) -> None:
    worker = stack.start_worker("worker-http")
    try:
        flaky = stack.sandbox_notification(simulation=True)
        vendor.then(Script(status=503, body={"message": "maintenance"}), Script())
        assert stack.post_webhook(flaky, secret=SIM_SECRET).status_code == 202
        flaky_id = flaky["provisionRequest"]["id"]
        record = stack.wait_state(flaky_id, "reported")
        assert record.outcome == "Success" and record.retries == 1
        assert len(vendor.calls_for(flaky_id)) == 2
        assert len(vendor.provisionings(flaky_id)) == 1
        assert [r["status"] for r in stack.sandbox.results(request_id=flaky_id)] == ["Success"]

        refused = stack.sandbox_notification(simulation=True)
        # A business refusal is a 400 (422 is the contract's "key reused with another body").
        vendor.then(Script(status=400, body={"message": "Plan does not allow 500 seats."}))
        assert stack.post_webhook(refused, secret=SIM_SECRET).status_code == 202
        refused_id = refused["provisionRequest"]["id"]
        stack.wait_state(refused_id, "reported")
        (result,) = stack.sandbox.results(request_id=refused_id)
        assert result["status"] == "Fail"
        assert result["errorMessage"] == "Plan does not allow 500 seats."
        assert len(vendor.calls_for(refused_id)) == 1
    finally:
        worker.stop()


def test_a_vendors_own_adapter_class(stack: Stack) -> None:
    worker = stack.start_worker(
        "worker-custom", VENDOR_ADAPTER="tests.support.adapters:RecordingAdapter"
    )
    try:
        body = stack.sandbox_notification(type="Renewal")
        assert stack.post_webhook(body).status_code == 202
        request_id = body["provisionRequest"]["id"]
        record = stack.wait_state(request_id, "reported")
        assert record.external_ids["externalProvisionerSubscriptionId"] == f"rec-{request_id[:8]}"
        (call,) = calls(stack.redis(), request_id)
        assert call["type"] == "Renewal" and call["adapter"] == "RecordingAdapter"
    finally:
        worker.stop()


def test_an_adapter_bug_makes_the_order_dead_and_reports_nothing(stack: Stack) -> None:
    worker = stack.start_worker(
        "worker-buggy", VENDOR_ADAPTER="tests.support.adapters:BuggyAdapter"
    )
    try:
        body = stack.sandbox_notification()
        assert stack.post_webhook(body).status_code == 202
        request_id = body["provisionRequest"]["id"]
        record = stack.wait_state(request_id, "dead")
        assert "KeyError" in record.error and "tenant_id" in record.error
        assert len(calls(stack.redis(), request_id, "bug")) == 1
        wait_until(lambda: "dead" in worker.log(), 10)
        assert stack.sandbox.results(request_id=request_id) == []
    finally:
        worker.stop()
