"""The sandbox on a developer's machine answers no web page: every control-plane write must be
``application/json`` (a cross-origin page cannot send that without a CORS preflight the
sandbox never grants) and every request must name the sandbox by an address, ``localhost`` or
a name given with ``--allowed-hosts`` (a page that rebinds its own name to 127.0.0.1 reads
nothing, ``/sandbox/config``'s client secrets least of all).

In-process (Flask's test client over ``sandbox.app.create_app``); ``tests/test_sandbox.py``
runs the process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sandbox.app import close_app, create_app
from sandbox.config import ConfigError, SandboxConfig

SECRET = "sandbox-secret-value-9f2"


@pytest.fixture
def app() -> Iterator[Flask]:
    made = create_app(SandboxConfig(client_secret=SECRET, allowed_hosts="sandbox"))
    yield made
    close_app(made)


class HostClient(FlaskClient):
    """A test client whose requests carry ``Host: <host>``."""

    host = "127.0.0.1:8080"

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("base_url", f"http://{self.host}")
        return super().open(*args, **kwargs)


def client(app: Flask, host: str = "127.0.0.1:8080") -> HostClient:
    app.test_client_class = HostClient
    test = app.test_client()
    assert isinstance(test, HostClient)
    test.host = host
    return test


def control_writes(app: Flask) -> list[tuple[str, str]]:
    """Every (method, path) of the control plane that changes something."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/sandbox/"):
            continue
        path = rule.rule.replace("<request_id>", "r-1").replace("<attempt_id>", "a-1")
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "DELETE", "PATCH"}):
            found.append((method, path))
    return found


MULTIPART = b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n'
FORMS = [
    ("text/plain", b'{"count": 3}'),
    ("application/x-www-form-urlencoded", b"count=3"),
    ("multipart/form-data; boundary=x", MULTIPART),
    (None, b'{"count": 3}'),
]


def test_no_control_write_is_taken_from_a_form_or_plain_text(app: Flask) -> None:
    browser = client(app)
    writes = control_writes(app)
    assert len(writes) >= 12  # reset, orders, bulk, webhooks, details, redeliver, faults...
    tried = 0
    for method, path in writes:
        for content_type, body in FORMS:
            headers = {"Origin": "https://attacker.example"}
            if content_type:
                headers["Content-Type"] = content_type
            response = browser.open(path, method=method, data=body, headers=headers)
            assert response.status_code == 415, (method, path, content_type, response.status)
            tried += 1
    print(f"{tried} cross-origin writes refused")
    # Nothing was created: no order, no webhook pointed elsewhere.
    state = browser.get("/sandbox/requests").get_json()
    assert state == {"requests": []}
    webhooks = browser.get("/sandbox/config").get_json()["environments"]["production"]["webhooks"]
    assert webhooks == []
    # The same write as JSON is taken.
    made = browser.post("/sandbox/orders", json={"deliver": False})
    assert made.status_code == 201


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example",
        "attacker.example:8080",
        "localhost.attacker.example",
        "127.0.0.1.nip.io:8080",
        "sandbox.attacker.example",
        "",
    ],
)
def test_a_foreign_host_gets_nothing(app: Flask, host: str) -> None:
    browser = client(app, host)
    for path in ("/sandbox/config", "/sandbox/requests", "/sandbox/health", "/v2/provisioners"):
        response = browser.get(path)
        assert response.status_code == 400, (host, path)
        assert SECRET not in response.get_data(as_text=True)
    token = browser.post(
        "/v1/token",
        json={"client_id": "sandbox-client", "client_secret": SECRET, "grant_type": "x"},
    )
    assert token.status_code == 400 and "access_token" not in token.get_data(as_text=True)
    assert browser.post("/sandbox/reset", json={}).status_code == 400


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8080", "localhost", "LOCALHOST:8080", "[::1]:8080", "10.20.0.3:8080",
             "sandbox:8080"],
)  # fmt: skip
def test_addresses_localhost_and_allowed_names_are_answered(app: Flask, host: str) -> None:
    config = client(app, host).get("/sandbox/config")
    assert config.status_code == 200
    assert config.get_json()["environments"]["production"]["clientSecret"] == SECRET


def test_every_answer_says_nosniff(app: Flask) -> None:
    browser = client(app)
    answers = [
        browser.get("/sandbox/config"),
        browser.get("/sandbox/nowhere"),
        browser.post("/sandbox/orders", data=b"x", headers={"Content-Type": "text/plain"}),
        client(app, "attacker.example").get("/sandbox/config"),
        browser.post("/v1/token", data=json.dumps({}), headers={"Content-Type": "text/plain"}),
    ]
    for response in answers:
        assert response.headers["X-Content-Type-Options"] == "nosniff", response.status


def test_allowed_hosts_must_be_host_names() -> None:
    with pytest.raises(ConfigError, match="--allowed-hosts"):
        SandboxConfig(allowed_hosts="sandbox,evil/path")
    assert SandboxConfig(allowed_hosts=" Sandbox , pax8.test ").host_names == {
        "sandbox",
        "pax8.test",
    }
