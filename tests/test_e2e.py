"""End to end: simulated orders of all eight types, through the sandbox, to results.

redis-server, the sandbox, gunicorn (Procfile ``web``) and a celery worker (Procfile
``worker``) run as processes. Orders are posted as simulation order events with the Pax8
client; the sandbox delivers each webhook to the receiver; the test then counts the
results Pax8 (the sandbox) holds: exactly one per attempt, with the right status and,
for a Fail, the vendor's message.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from config.settings import build_settings
from fulfillment.runtime.clients import pax8_client
from pax8.client import Pax8Client
from tests.support.stack import Stack, unique_domain


@pytest.fixture(scope="module")
def pax8(stack: Stack) -> Iterator[Pax8Client]:
    client = pax8_client(build_settings(**_lower(stack.sandbox.env())))
    yield client
    client.close()


def _lower(env: dict[str, str]) -> dict[str, Any]:
    return {key.lower(): value for key, value in env.items()}


def _order(pax8: Pax8Client, request: dict[str, Any], details: dict[str, Any] | None = None) -> str:
    event = pax8.create_order_event(
        {"provisionRequest": request, "provisionDetail": {"details": details or {}}}
    )
    assert event.provision_attempt is not None
    assert event.provision_attempt.status == "Acknowledged", event
    assert event.provision_request is not None
    return event.provision_request.id


def _result(stack: Stack, request_id: str) -> dict[str, Any]:
    stack.wait_state(request_id, "reported", timeout=30)
    results = stack.sandbox.results(request_id=request_id)
    assert len(results) == 1, results
    return results[0]


def test_all_eight_types_end_to_end(stack: Stack, pax8: Pax8Client) -> None:
    company, partner = str(uuid.uuid4()), str(uuid.uuid4())
    subscription, domain = str(uuid.uuid4()), unique_domain()
    base = {"companyId": company, "partnerId": partner, "companyDomain": domain}

    # NetNew: a tenant is created; its ids go back to Pax8.
    net_new = _order(
        pax8,
        {**base, "type": "NetNew", "subscriptionId": subscription, "quantity": 3},
        {"adminEmail": "admin@" + domain},
    )
    result = _result(stack, net_new)
    assert result["status"] == "Success"
    assert result["externalProvisionerSubscriptionId"].startswith("sub-")
    assert result["externalProvisionerCompanyId"].startswith("tn-")

    # NetNew for another company with the same domain: an honest Fail.
    taken = _order(
        pax8,
        {
            "type": "NetNew",
            "companyId": str(uuid.uuid4()),
            "companyDomain": domain,
            "subscriptionId": str(uuid.uuid4()),
        },
    )
    result = _result(stack, taken)
    assert result["status"] == "Fail"
    assert f"domain {domain} is already in use" in result["errorMessage"]

    # Update, ChangeProduct and Renewal act on the subscription NetNew made.
    update = _order(pax8, {**base, "type": "Update", "subscriptionId": subscription, "quantity": 7})
    result = _result(stack, update)
    assert result["status"] == "Success"
    assert result["metadata"]["quantity"] == 7

    change = _order(
        pax8,
        {
            **base,
            "type": "ChangeProduct",
            "subscriptionId": subscription,
            "productId": str(uuid.uuid4()),
        },
    )
    assert _result(stack, change)["status"] == "Success"

    renewal = _order(pax8, {**base, "type": "Renewal", "subscriptionId": subscription})
    assert _result(stack, renewal)["status"] == "Success"

    # A trial, then its conversion.
    trial_sub = str(uuid.uuid4())
    trial = _order(
        pax8,
        {
            "type": "TrialCreate",
            "subscriptionId": trial_sub,
            "companyId": str(uuid.uuid4()),
            "companyDomain": unique_domain(),
        },
    )
    assert _result(stack, trial)["status"] == "Success"
    convert = _order(pax8, {"type": "TrialConvert", "subscriptionId": trial_sub})
    assert _result(stack, convert)["status"] == "Success"
    # Converting a paid subscription is refused with a reason.
    again = _order(pax8, {"type": "TrialConvert", "subscriptionId": trial_sub})
    result = _result(stack, again)
    assert result["status"] == "Fail"
    assert "not a trial" in result["errorMessage"]

    enrollment = _order(pax8, {"type": "PartnerEnrollment", "partnerId": str(uuid.uuid4())})
    result = _result(stack, enrollment)
    assert result["status"] == "Success"
    assert result["externalProvisionerPartnerEnrollmentId"].startswith("enr-")

    # Deprovision of a subscription the vendor never saw: Fail; of the real one: Success.
    unknown = _order(pax8, {"type": "Deprovision", "subscriptionId": str(uuid.uuid4())})
    result = _result(stack, unknown)
    assert result["status"] == "Fail"
    assert "unknown to the vendor" in result["errorMessage"]
    deprovision = _order(pax8, {**base, "type": "Deprovision", "subscriptionId": subscription})
    assert _result(stack, deprovision)["status"] == "Success"

    # Exactly one result per acknowledged attempt, all answered with simulation credentials.
    ids = [
        net_new,
        taken,
        update,
        change,
        renewal,
        trial,
        convert,
        again,
        enrollment,
        unknown,
        deprovision,
    ]
    results = [r for r in stack.sandbox.results() if r["provisionRequestId"] in ids]
    assert len(results) == len(ids)
    assert {r["environment"] for r in results} == {"simulation"}
    for request_id in ids:
        attempts = stack.sandbox.request(request_id)["attempts"]
        acknowledged = [a["id"] for a in attempts if a["status"] == "Acknowledged"]
        answered = [
            r["provisionAttemptId"] for r in results if r["provisionRequestId"] == request_id
        ]
        assert answered == acknowledged


def test_ledger_history_records_each_state(stack: Stack, pax8: Pax8Client) -> None:
    request_id = _order(
        pax8,
        {"type": "NetNew", "subscriptionId": str(uuid.uuid4()), "companyDomain": unique_domain()},
    )
    stack.wait_state(request_id, "reported")
    states = [entry["state"] for entry in stack.ledger.history(request_id)]
    assert states == ["received", "queued", "provisioning", "provisioned", "reported"]
    record = stack.record(request_id)
    assert record is not None and record.simulation and record.type == "NetNew"
