"""Every answer of the receiver (``docs/architecture.md#http-answers-of-the-receiver``),
in-process: Flask's test client over ``create_app(settings, services)`` with a real
redis-server and the real Celery publisher (its messages land on the queues; no worker
consumes them here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from cli.redis_server import free_port
from config.version import LEDGER_SCHEMA, __version__
from fulfillment.ledger import Ledger
from fulfillment.ledger.migrations import migrate
from fulfillment.runtime.clients import RedisUse
from receiver.app import create_app
from tests.support.stack import notification
from tests.unit.conftest import PROD_SECRET, SIM_SECRET, make_settings
from worker.services import build_services

HEADER = "pax8ApiTokenV1"
CLOUDBLUE = "unit-cloudblue-secret"


def build(redis_url: str, **overrides: Any) -> Flask:
    settings = make_settings(redis_url, **{"cloudblue_webhook_secrets": CLOUDBLUE, **overrides})
    return create_app(settings, build_services(settings, RedisUse.RECEIVER))


@pytest.fixture
def app(redis_url: str) -> Iterator[Flask]:
    app = build(redis_url)
    yield app
    app.extensions["fulfillment"].services.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


def post(client: FlaskClient, body: Any, secret: str | None = PROD_SECRET, **headers: str) -> Any:
    if secret is not None:
        headers[HEADER] = secret
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/webhooks/pax8", data=data, headers=headers)


def queued(raw: redis.Redis, queue: str = "fulfillment.net_new") -> list[dict[str, Any]]:
    """The Celery messages waiting on ``queue`` (headers say which task and arguments)."""
    return [json.loads(m)["headers"] for m in raw.lrange(queue, 0, -1)]


def test_a_valid_notification_is_recorded_enqueued_and_answered_202(
    client: FlaskClient, raw: redis.Redis
) -> None:
    body = notification()
    response = post(client, body)
    assert response.status_code == 202
    request_id = body["provisionRequest"]["id"]
    assert response.json == {
        "status": "accepted",
        "provisionRequestId": request_id,
        "action": "queued",
        "provisionAttemptId": body["provisionAttempt"]["id"],
    }
    (message,) = queued(raw)
    assert message["task"] == "fulfillment.net_new"
    assert json.loads(message["argsrepr"].replace("'", '"')) == [
        request_id,
        body["provisionDetail"]["id"],
    ]
    record = Ledger(raw).get(request_id)
    assert record is not None and record.state == "queued" and not record.simulation


def test_a_redelivery_is_202_and_enqueues_nothing_more(
    client: FlaskClient, raw: redis.Redis
) -> None:
    body = notification()
    assert post(client, body).status_code == 202
    again = post(client, body)
    assert again.status_code == 202 and again.json["action"] == "inflight"
    assert len(queued(raw)) == 1


def test_a_new_attempt_for_a_finished_order_enqueues_its_report(
    client: FlaskClient, raw: redis.Redis
) -> None:
    body = notification()
    request_id, detail_id = body["provisionRequest"]["id"], body["provisionDetail"]["id"]
    post(client, body)
    ledger = Ledger(raw)
    ledger.claim(ledger.resolve(request_id), detail_id, "t", 60, 5)
    ledger.finish(ledger.resolve(request_id), detail_id, "t", "Success", {}, {})
    retry = {**body, "provisionAttempt": {**body["provisionAttempt"], "id": "a-retry"}}
    response = post(client, retry)
    assert response.status_code == 202 and response.json["action"] == "report"
    (message,) = queued(raw, "fulfillment.report")
    assert message["task"] == "fulfillment.report" and request_id in message["argsrepr"]


@pytest.mark.parametrize("secret", [None, "", "wrong", PROD_SECRET + "x"])
def test_a_missing_or_wrong_secret_is_401_and_nothing_recorded(
    client: FlaskClient, raw: redis.Redis, secret: str | None
) -> None:
    body = notification()
    response = post(client, body, secret=secret)
    assert response.status_code == 401 and HEADER in response.json["error"]
    assert raw.keys("*") == []


def test_a_simulation_secret_is_401_on_production_and_202_on_a_simulation(
    client: FlaskClient, raw: redis.Redis
) -> None:
    response = post(client, notification(), secret=SIM_SECRET)
    assert response.status_code == 401 and "isSimulation" in response.json["error"]
    assert raw.keys("*") == []
    assert post(client, notification(simulation=True), secret=SIM_SECRET).status_code == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{nope", "body"),
        (b"[1, 2]", "body"),
        (b'{"provisionAttempt": {"id": "a"}}', "provisionRequest"),
        (b'{"provisionRequest": {"id": ""}, "provisionAttempt": {"id": "a"}}',
         "provisionRequest.id"),
        (b'{"provisionRequest": {"id": "r"}, "provisionAttempt": {}}', "provisionAttempt.id"),
        (b'{"provisionRequest": {"id": "r", "type": "Nope"}, "provisionAttempt":'
         b' {"id": "a", "provisionDetailId": "d"}}', "provisionRequest.type"),
    ],
)  # fmt: skip
def test_a_malformed_body_is_400_naming_the_field(
    client: FlaskClient, raw: redis.Redis, body: bytes, field: str
) -> None:
    response = post(client, body)
    assert response.status_code == 400 and response.json["field"] == field
    assert raw.keys("*") == []


def test_a_body_over_256_kib_is_413(client: FlaskClient, raw: redis.Redis) -> None:
    response = post(client, b"x" * (256 * 1024 + 1))
    assert response.status_code == 413 and "256 KiB" in response.json["error"]
    assert raw.keys("*") == []


def test_redis_unreachable_is_503_with_retry_after(redis_url: str) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    app = build(closed, redis_socket_timeout_seconds=0.5)
    client = app.test_client()
    response = post(client, notification())
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    down = client.get("/readyz")
    assert down.status_code == 503 and down.json == {
        "status": "unavailable",
        "release": __version__,
    }
    assert client.get("/healthz").status_code == 200  # the process itself is fine


def test_health_readiness_and_no_metrics_on_the_webhook_port(
    client: FlaskClient, redis_url: str
) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    # The release that answers and the data's schema (none stamped: no process started here).
    assert client.get("/readyz").json == {"status": "ok", "release": __version__, "schema": None}
    migrate(Ledger(redis.Redis.from_url(redis_url)))
    ready = client.get("/readyz").json
    assert ready == {"status": "ok", "release": __version__, "schema": LEDGER_SCHEMA}
    post(client, notification())
    # Metrics are served by gunicorn's master on their own port: never here, token or not.
    assert client.get("/metrics").status_code == 404
    with_token = build(redis_url, metrics_token="unit-metrics-token").test_client()
    headers = {"Authorization": "Bearer unit-metrics-token"}
    assert with_token.get("/metrics", headers=headers).status_code == 404


def test_webhook_answers_are_counted_and_timed_in_process(client: FlaskClient) -> None:
    def count(status: str) -> float:
        value = REGISTRY.get_sample_value(
            "fulfillment_webhooks_total", {"route": "/webhooks/pax8", "status": status}
        )
        return value or 0.0

    def timed() -> float:
        labels = {"route": "/webhooks/pax8"}
        return REGISTRY.get_sample_value("fulfillment_webhook_duration_seconds_count", labels) or 0

    before = {status: count(status) for status in ("202", "400", "401")}
    timed_before = timed()
    post(client, notification())
    assert (
        client.post(
            "/webhooks/pax8", data=b"{", headers={"pax8ApiTokenV1": PROD_SECRET}
        ).status_code
        == 400
    )
    assert client.post("/webhooks/pax8", data=b"{}").status_code == 401
    after = {status: count(status) - before[status] for status in before}
    assert after == {"202": 1, "400": 1, "401": 1}
    assert timed() - timed_before == 3


def test_unknown_paths_and_methods_are_json_errors(client: FlaskClient) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.json["status"] == 404
    assert client.get("/webhooks/pax8").status_code == 405


# -- what an answer may carry: no outside value, nosniff; every webhook route counted --------

EVIL = "EVIL-\u202e<b>x</b>\x1b[31m"


def test_a_400_never_echoes_a_value_it_refused(client: FlaskClient) -> None:
    tried = 0
    for field, change in [
        ("provisionRequest.type", lambda n: n["provisionRequest"].update(type=EVIL)),
        ("provisionRequest.type", lambda n: n["provisionRequest"].update(type=[EVIL])),
        ("provisionRequest.type", lambda n: n["provisionRequest"].update(type={"x": EVIL})),
        ("provisionRequest.type", lambda n: n["provisionRequest"].update(type=EVIL * 100)),
        ("provisionRequest.id", lambda n: n["provisionRequest"].update(id=EVIL)),
        ("provisionAttempt.id", lambda n: n["provisionAttempt"].update(id=EVIL)),
        ("provisionDetail.id", lambda n: n["provisionDetail"].update(id=EVIL)),
        ("provisionAttempt.webhookId", lambda n: n["provisionAttempt"].update(webhookId=EVIL)),
    ]:
        body = notification()
        change(body)
        response = post(client, body)
        text = response.get_data(as_text=True)
        assert response.status_code == 400 and response.json["field"] == field, text
        assert "EVIL" not in text and "<b>" not in text and "\\u001b" not in text, text
        tried += 1
    assert tried == 8


def test_every_answer_says_nosniff(client: FlaskClient) -> None:
    answers = [
        post(client, notification()),  # 202
        post(client, b"{"),  # 400
        post(client, notification(), secret="wrong"),  # 401
        post(client, b"x" * (256 * 1024 + 1)),  # 413
        client.get("/healthz"),
        client.get("/readyz"),
        client.get("/nope"),  # 404
        client.get("/webhooks/pax8"),  # 405
        client.post("/webhooks/cloudblue/create", data=b"{}"),  # 401
        client.post("/webhooks/cloudblue", data=b"{", headers={"X-Fulfillment-Token": CLOUDBLUE}),
    ]
    for response in answers:
        assert response.headers.get("X-Content-Type-Options") == "nosniff", response.status


def test_cloudblue_answers_are_counted_with_the_webhooks(client: FlaskClient) -> None:
    def count(route: str, status: str) -> float:
        labels = {"route": route, "status": status}
        return REGISTRY.get_sample_value("fulfillment_webhooks_total", labels) or 0.0

    base, suffixed = "/webhooks/cloudblue/", "/webhooks/cloudblue/<suffix>"
    before = (count(base, "401"), count(suffixed, "401"), count(suffixed, "400"))
    client.post("/webhooks/cloudblue", data=b"{}")
    client.post("/webhooks/cloudblue/stop", data=b"{}")
    token = {"X-Fulfillment-Token": CLOUDBLUE}
    assert client.post("/webhooks/cloudblue/stop", data=b"{", headers=token).status_code == 400
    after = (count(base, "401"), count(suffixed, "401"), count(suffixed, "400"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
