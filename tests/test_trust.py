"""Trust boundaries with real processes: no notice of one scope changes another's order,
and no outside id becomes structure (a key, a path, a log line).

Each test reproduces a finding of the trust review (issue 13) that failed before the fix:
a simulation credential (or the CloudBlue one) rewriting a production order, and ids that
corrupted another record (``…:attempts``), answered 500 (``…:history``), redirected a Pax8
call (``../../v1/token``) or forged a log line (a newline).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fulfillment.ledger.refs import Ref, Scope
from tests.support.bodies import field_paths, with_value
from tests.support.procs import wait_until
from tests.support.sentry_server import SentryServer
from tests.support.stack import PROD_SECRET, SIM_SECRET, Stack, notification
from vendors.example import ExampleAdapter

CLOUDBLUE_SECRET = "trust-cloudblue-secret"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        tmp_path_factory.mktemp("trust"),
        # No worker runs while most of these calls come: a CloudBlue call waits 1 s, then 503.
        env={
            "CLOUDBLUE_WEBHOOK_SECRETS": CLOUDBLUE_SECRET,
            "CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS": "1",
        },
    )
    try:
        running.start_receiver()
        yield running
    finally:
        running.stop()


def vendor_calls(stack: Stack, request_id: str, simulation: bool) -> list[dict[str, Any]]:
    entries = ExampleAdapter(client=stack.redis()).provisionings(simulation)
    return [entry for entry in entries if entry["requestId"] == request_id]


def test_a_simulation_or_cloudblue_notice_never_changes_a_production_order(
    stack: Stack,
) -> None:
    production = stack.sandbox_notification()
    request_id = production["provisionRequest"]["id"]
    assert stack.post_webhook(production).status_code == 202
    # Before any worker runs: a simulation credential and the CloudBlue one each send a
    # notice for the same request id, with a detail of their own.
    forged = notification(
        simulation=True, request_id=request_id, details={"adminEmail": "evil@example.com"}
    )
    assert stack.post_webhook(forged, secret=SIM_SECRET).status_code == 202
    cloudblue = {
        "operation": "creation",
        "requestId": request_id,
        "subscriptionId": "s-1",
        "tenantId": "t-1",
        "tenant": {},
        "products": [{"mpn": "P", "limit": 2}],
    }
    answered = httpx.post(
        f"{stack.receiver_url}/webhooks/cloudblue",
        json=cloudblue,
        headers={"X-Fulfillment-Token": CLOUDBLUE_SECRET},
        timeout=10,
    )
    # Recorded (its own scope), not finished: no worker runs yet.
    assert answered.status_code == 503 and answered.headers["Retry-After"] == "5"
    worker = stack.start_worker("worker-trust")
    ref = Ref(Scope.PAX8, request_id)
    try:
        stack.wait_state(ref, "reported")
        # The production order is fulfilled exactly as if the other notices never came.
        (result,) = stack.wait_results(1, request_id=request_id, environment="production")
        assert result["provisionAttemptId"] == production["provisionAttempt"]["id"]
        assert result["status"] == "Success"
        (record,) = [r for r in stack.ledger.find(request_id) if r.ref.scope == "pax8"]
        assert record.detail_id == production["provisionDetail"]["id"]
        assert record.state == "reported" and not record.simulation
        calls = vendor_calls(stack, request_id, simulation=False)
        production_detail = production["provisionDetail"]["id"]
        assert [c["detailId"] for c in calls].count(production_detail) == 1
        assert forged["provisionDetail"]["id"] not in {c["detailId"] for c in calls}
        # The others live apart, each in its own scope; none reached production. A CloudBlue
        # record is named by (subscription, operation, requestId), never by the bare id.
        scopes = sorted(str(r.ref.scope) for r in stack.ledger.find(request_id))
        assert scopes == ["pax8", "pax8-sim"]
        cloudblue_id = answered.headers["X-Fulfillment-Request-Id"]
        assert cloudblue_id != request_id
        assert stack.record(Ref(Scope.CLOUDBLUE, cloudblue_id)) is not None
        assert stack.sandbox.results(request_id=request_id, environment="production") == [result]
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("section", "bad"),
    [
        ("provisionRequest", "victim:attempts"),
        ("provisionRequest", "victim:history"),
        ("provisionRequest", "../../v1/token"),
        ("provisionRequest", "r?page=99"),
        ("provisionRequest", "r\nlevel=ERROR request_id=forged"),
        ("provisionRequest", "\x1b[31mred"),
        ("provisionRequest", " padded"),
        ("provisionRequest", "x" * 129),
        ("provisionAttempt", "a/b"),
        ("provisionDetail", "d:1"),
    ],
)
def test_an_id_outside_the_pattern_is_400_naming_the_field_and_nothing_recorded(
    stack: Stack, section: str, bad: str
) -> None:
    body = notification()
    body[section]["id"] = bad
    if section == "provisionDetail":
        body["provisionAttempt"]["provisionDetailId"] = bad
    keys_before = set(stack.redis().keys("*"))
    response = stack.post_webhook(body)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == f"{section}.id"
    assert bad not in response.text  # the answer does not echo it back either
    assert set(stack.redis().keys("*")) == keys_before
    log = stack.procs[0].log(tail=20_000)
    assert "forged" not in log


def test_a_record_named_like_anothers_keys_cannot_touch_them(stack: Stack) -> None:
    """``victim:attempts`` was a request whose record key was the victim's attempts hash."""
    victim = notification(request_id=f"victim-{uuid.uuid4().hex[:8]}")
    assert stack.post_webhook(victim).status_code == 202
    victim_id = victim["provisionRequest"]["id"]
    before = stack.ledger.attempts(victim_id)
    attack = notification(request_id=f"{victim_id}:attempts")
    response = stack.post_webhook(attack)
    assert response.status_code == 400 and response.json()["field"] == "provisionRequest.id"
    assert stack.ledger.attempts(victim_id) == before
    assert json.loads(stack.ledger.get(victim_id).payload) == victim  # type: ignore[union-attr]


def test_half_sent_and_idle_connections_do_not_block_the_receiver(stack: Stack) -> None:
    """50 connections that send part of a request and stall (slowloris): the Procfile's web
    line (gevent workers) still answers a webhook and /healthz within a second."""
    import socket
    import time

    stalled = []
    try:
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", stack.receiver_port), timeout=5)
            sock.sendall(b"POST /webhooks/pax8 HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n")
            stalled.append(sock)
        for _ in range(25):  # idle ones too: connected, nothing sent
            stalled.append(socket.create_connection(("127.0.0.1", stack.receiver_port), timeout=5))
        for _ in range(3):
            started = time.monotonic()
            response = stack.post_webhook(notification())
            webhook_took = time.monotonic() - started
            started = time.monotonic()
            health = stack.http.get(f"{stack.receiver_url}/healthz")
            health_took = time.monotonic() - started
            assert response.status_code == 202 and health.status_code == 200
            assert webhook_took < 1.0 and health_took < 1.0, (webhook_took, health_took)
    finally:
        for sock in stalled:
            sock.close()


def hostile_bodies() -> list[tuple[str, bytes]]:
    """Named hostile bodies: each must get a 2xx or a 4xx, never a 5xx."""
    good = notification()
    raw = json.dumps(good)
    cases: list[tuple[str, bytes]] = [
        ("deep arrays (1,000)", raw[:-1].encode() + b', "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"),
        ("deep objects (60,000)", b'{"a":' * 60_000 + b"1" + b"}" * 60_000),
        (
            "lone surrogate in the request id",
            raw.replace(good["provisionRequest"]["id"], "\\ud800").encode(),
        ),
        (
            "lone surrogate in a name",
            json.dumps(with_value(good, ("provisionRequest", "companyName"), "x"))
            .replace('"x"', '"\\udfff"')
            .encode(),
        ),
        ("huge float", raw.replace('"quantity": 1', '"quantity": 1e400').encode()),
        ("huge integer", raw.replace('"quantity": 1', '"quantity": ' + "9" * 5000).encode()),
        (
            "duplicate keys",
            raw[:-1].encode() + b', "provisionRequest": {"id": "other", "type": "NetNew"}}',
        ),
        ("NUL bytes", b"\x00" * 64 + raw.encode()),
        ("NUL in an id", raw.replace(good["provisionAttempt"]["id"], "a\\u0000b").encode()),
        ("invalid UTF-8", b'{"provisionRequest": {"id": "\xff\xfe"}}'),
        ("byte order mark", b"\xef\xbb\xbf" + raw.encode()),
        ("empty", b""),
        ("a JSON string", b'"provisionRequest"'),
        ("a JSON array", b"[]"),
        ("a number", b"12"),
        (
            "200 KiB name",
            json.dumps(
                with_value(good, ("provisionRequest", "companyName"), "n" * 200_000)
            ).encode(),
        ),
    ]
    for path in field_paths(good):
        for kind, value in (("null", None), ("bool", True), ("int", 7), ("float", 1.5),
                            ("string", "s"), ("list", []), ("object", {}), ("-1", -1)):  # fmt: skip
            name = f"{'.'.join(map(str, path))} = {kind}"
            cases.append((name, json.dumps(with_value(good, path, value)).encode()))
    return cases


def test_no_hostile_body_gets_a_5xx_from_the_gunicorn_receiver(stack: Stack) -> None:
    cases = hostile_bodies()
    answers: dict[int, int] = {}
    server_errors = []
    with httpx.Client(timeout=30) as client:
        for name, body in cases:
            for route, header, secret in (
                ("pax8", "pax8ApiTokenV1", PROD_SECRET),
                ("cloudblue", "X-Fulfillment-Token", CLOUDBLUE_SECRET),
            ):
                response = client.post(
                    f"{stack.receiver_url}/webhooks/{route}",
                    content=body,
                    headers={header: secret, "Content-Type": "application/json"},
                )
                answers[response.status_code] = answers.get(response.status_code, 0) + 1
                if response.status_code >= 500:
                    server_errors.append((route, name, response.status_code))
    print(f"[hostile bodies] {len(cases)} bodies x 2 routes, answers {sorted(answers.items())}")
    assert server_errors == []
    assert set(answers) <= {202, 400, 413}, answers


def test_no_credential_reaches_sentry_or_the_logs(tmp_path: Path) -> None:
    """Real events (a receiver 500 with the webhook credential in its headers, a dead order
    whose adapter put the vendor token in its error and its log, refused Pax8 credentials)
    posted to a loopback Sentry; every envelope, decompressed, and every process log is
    searched for every secret value of the test, in any case."""
    vendor_token = "Vendor-Token-7f3a9c"
    wrong_secret = "Wrong-Client-Secret-41d2"
    with SentryServer() as sentry:
        leaky = Stack(
            tmp_path,
            env={
                "SENTRY_DSN": sentry.dsn,
                "LOG_LEVEL": "DEBUG",
                "VENDOR_HTTP_TOKEN": vendor_token,
                "METRICS_TOKEN": "Metrics-Token-88be",
                "CLOUDBLUE_WEBHOOK_SECRETS": CLOUDBLUE_SECRET,
            },
        )
        try:
            leaky.start_receiver()
            body = leaky.sandbox_notification()
            request_id = body["provisionRequest"]["id"]
            leaky.redis().set(f"ff:req:pax8:{request_id}", "not a hash")  # a bug: a 500
            assert leaky.post_webhook(body).status_code == 500
            leaky.redis().delete(f"ff:req:pax8:{request_id}")
            leaky.start_worker("worker-leaky", VENDOR_ADAPTER="tests.support.adapters:LeakyAdapter")
            assert leaky.post_webhook(body).status_code == 202
            leaky.wait_state(request_id, "dead")
            locked_out = leaky.start_worker("worker-locked-out", PAX8_CLIENT_SECRET=wrong_secret)
            leaky.procs[-2].stop()  # the leaky worker: the next order goes to this one
            other = leaky.sandbox_notification()
            assert leaky.post_webhook(other).status_code == 202
            leaky.wait_state(other["provisionRequest"]["id"], "provisioned")

            def enough() -> bool:
                kinds = {dict(e.get("tags") or {}).get("component") for e in sentry.events()}
                return {"receiver", "worker"} <= kinds and len(sentry.events()) >= 3

            def seen() -> str:
                return str(
                    [
                        (
                            dict(e.get("tags") or {}).get("component"),
                            (e.get("exception") or {}).get("values", [{}])[-1].get("type"),
                            e.get("message") or e.get("logentry"),
                        )
                        for e in sentry.events()
                    ]
                )

            wait_until(enough, 30, message=seen)
            locked_out.stop()
            secrets = [
                PROD_SECRET, SIM_SECRET, CLOUDBLUE_SECRET, vendor_token, wrong_secret,
                "Metrics-Token-88be", leaky.sandbox.client_credentials()[1],
                leaky.sandbox.client_credentials(simulation=True)[1],
            ]  # fmt: skip
            envelopes = b"\n".join(sentry.envelopes).decode(errors="replace").lower()
            logs = "\n".join(proc.log(tail=10**8) for proc in leaky.procs).lower()
            assert "vendor answered 500" in envelopes  # the leaky error did reach Sentry
            for secret in secrets:
                assert secret.lower() not in envelopes, f"{secret} reached Sentry"
                assert secret.lower() not in logs, f"{secret} reached a log"
        finally:
            leaky.stop()
