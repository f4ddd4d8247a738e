"""Never a 5xx from a body: any bytes, with a valid secret, get a 2xx or a 4xx.

Property tests (hypothesis) against the in-process receiver with a real Redis: arbitrary
bytes, arbitrary JSON, and a valid notification with any one field replaced by arbitrary
JSON. The named hostile bodies (deep nesting, surrogates, huge numbers, duplicate keys, NUL
bytes, wrong types at every field) run against the gunicorn process in tests/test_trust.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fulfillment.runtime.clients import RedisUse
from receiver.app import create_app
from tests.support.bodies import field_paths, with_value
from tests.support.stack import notification
from tests.unit.conftest import PROD_SECRET, make_settings
from worker.services import build_services

CLOUDBLUE = "hostile-cloudblue-secret"
EXAMPLES = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    from cli.redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("hostile"), appendonly=False).start()
    # A valid CloudBlue call waits for its outcome (no worker here): not long.
    settings_ = make_settings(
        server.url, cloudblue_webhook_secrets=CLOUDBLUE, cloudblue_response_timeout_seconds=0.2
    )
    app = create_app(settings_, build_services(settings_, RedisUse.RECEIVER))
    yield app
    app.extensions["fulfillment"].services.close()
    server.stop()


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def answer(client: FlaskClient, body: bytes, route: str = "pax8") -> int:
    headers = (
        {"pax8ApiTokenV1": PROD_SECRET} if route == "pax8" else {"X-Fulfillment-Token": CLOUDBLUE}
    )
    response = client.post(f"/webhooks/{route}", data=body, headers=headers)
    assert response.is_json, response.get_data(as_text=True)[:200]
    return response.status_code


TEMPLATE = notification(somethingNew={"nested": [1, {"deeper": True}]})
FIELD_PATHS = list(field_paths(TEMPLATE))


def replaced(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body: dict[str, Any] = with_value(TEMPLATE, path, value)
    return body


@EXAMPLES
@given(st.binary(max_size=2048))
def test_any_bytes_get_a_4xx_or_a_2xx(client: FlaskClient, body: bytes) -> None:
    assert answer(client, body) < 500
    assert answer(client, body, "cloudblue") < 500


@EXAMPLES
@given(json_values)
def test_any_json_gets_a_4xx_or_a_2xx(client: FlaskClient, value: Any) -> None:
    body = json.dumps(value).encode()
    assert answer(client, body) < 500
    assert answer(client, body, "cloudblue") < 500


@EXAMPLES
@given(st.sampled_from(FIELD_PATHS), json_values)
def test_a_notification_with_any_field_replaced_gets_a_4xx_or_a_2xx(
    client: FlaskClient, path: tuple[Any, ...], value: Any
) -> None:
    assert answer(client, json.dumps(replaced(path, value)).encode()) < 500


@EXAMPLES
@given(st.text(min_size=1, max_size=200))
def test_any_request_id_is_accepted_only_if_it_matches_the_pattern(
    client: FlaskClient, request_id: str
) -> None:
    from fulfillment.ledger.refs import is_id

    body = json.dumps(replaced(("provisionRequest", "id"), request_id)).encode()
    status = answer(client, body)
    assert status == (202 if is_id(request_id) else 400)
