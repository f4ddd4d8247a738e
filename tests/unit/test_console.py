"""The operator console in-process (Flask's test client over ``create_console``): its pages
read the ledger through fulfillment.views, Replay follows fulfillment.workflow.replay behind a CSRF
token, outside values are escaped, secrets are filtered, and nobody gets in who should not.

The same console is driven in a real Chromium against a running stack in
``tests/test_console_browser.py``.
"""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from config.settings import ConfigError
from config.version import LEDGER_SCHEMA, __version__
from console.app import create_console
from fulfillment.doctor import store as doctor_store
from fulfillment.doctor.result import Check, Report, Status
from fulfillment.doctor.run import NAMES
from fulfillment.intake.accept import accept
from fulfillment.intake.notifications import parse_pax8
from fulfillment.ledger.liveness import Liveness
from fulfillment.ledger.migrations import migrate
from fulfillment.ledger.refs import Ref, Scope
from fulfillment.ledger.states import State
from fulfillment.runtime.clients import RedisUse
from fulfillment.services import Services
from tests.support.stack import notification
from tests.unit.conftest import (
    PROD_SECRET,
    Pax8World,
    RecordingPublisher,
    ServicesFactory,
    make_settings,
)

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def record(services: Services, simulation: bool = False, **fields: Any) -> Ref:
    """A notification accepted into the ledger (the publisher only records the task)."""
    body = notification(simulation=simulation, **fields)
    notice, _ = parse_pax8(json.dumps(body).encode())
    accept(services.ledger, services.publisher, notice, services.settings.routes)
    return notice.ref


class HostClient(FlaskClient):
    """A test client whose requests carry the ``Host`` of ``base_url``."""

    base_url = "http://127.0.0.1:8090"

    def open(self, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], str) and args[0].startswith("/"):
            kwargs.setdefault("base_url", self.base_url)
        return super().open(*args, **kwargs)


def console_client(services: Services, base: str = "http://127.0.0.1:8090") -> FlaskClient:
    app = create_console(services.settings, services)
    app.test_client_class = HostClient
    client = app.test_client()
    assert isinstance(client, HostClient)
    client.base_url = base
    return client


def csrf(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


@pytest.fixture
def services(make_services: ServicesFactory) -> Services:
    # Without users: anonymous loopback, asked for by name (as fulfill dev does).
    return make_services(console_anonymous=True)


@pytest.fixture
def client(services: Services) -> FlaskClient:
    return console_client(services)


def test_orders_are_listed_filtered_and_paged(services: Services, client: FlaskClient) -> None:
    refs = [record(services) for _ in range(55)]
    sim = record(services, simulation=True, request_type="Update")
    services.ledger.mark_dead(refs[0], "vendor still failing")

    page = client.get("/orders").get_data(as_text=True)
    assert page.count('class="id" href="/orders/') == 50  # one page, newest first
    assert sim.id in page and 'rel="next"' in page
    second = client.get("/orders?page=2").get_data(as_text=True)
    assert second.count('class="id" href="/orders/') == 6 and 'rel="next"' not in second

    dead = client.get("/orders?state=dead").get_data(as_text=True)
    assert refs[0].id in dead and dead.count('class="id" href="/orders/') == 1
    simulated = client.get("/orders?simulation=yes").get_data(as_text=True)
    assert simulated.count('class="id" href="/orders/') == 1 and sim.id in simulated
    by_type = client.get("/orders?type=Update").get_data(as_text=True)
    assert by_type.count('class="id" href="/orders/') == 1
    by_scope = client.get("/orders?scope=pax8").get_data(as_text=True)
    assert sim.id not in by_scope
    assert "No orders match" in client.get("/orders?older=1d").get_data(as_text=True)
    assert client.get("/orders?newer=1h").get_data(as_text=True).count('href="/orders/p') == 50
    # Unknown values are ignored, never passed on.
    assert client.get("/orders?state=';DROP&type=<x>&page=-3").status_code == 200


def test_find_goes_to_the_order_in_its_scope(services: Services, client: FlaskClient) -> None:
    ref = record(services)
    found = client.get(f"/find?id={ref.id}")
    assert found.status_code == 302 and found.location == f"/orders/pax8/{ref.id}"
    missing = client.get("/find?id=nope", follow_redirects=True).get_data(as_text=True)
    assert "No order nope in the ledger." in missing
    bad = client.get("/find?id=../../x", follow_redirects=True).get_data(as_text=True)
    assert "An order id is 1-128 letters" in bad
    assert client.get("/orders/pax8/..%2Fx").status_code == 404
    assert client.get(f"/orders/nowhere/{ref.id}").status_code == 404


def test_an_order_page_escapes_outside_values_and_filters_secrets(
    services: Services, client: FlaskClient
) -> None:
    ref = record(
        services,
        details={"adminPassword": "hunter2-hunter2", "note": f"credential {PROD_SECRET}"},
        companyName=HOSTILE,
    )
    services.ledger.mark_dead(ref, f"adapter error: KeyError: {HOSTILE}")
    page = client.get(f"/orders/pax8/{ref.id}").get_data(as_text=True)
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(" in page
    assert "hunter2" not in page and PROD_SECRET not in page
    assert '"adminPassword": "[Filtered]"' in html.unescape(page)
    for section in ("Attempts and results", "History", "Errors", "External ids", "Raw payload"):
        assert f"<h2>{section}</h2>" in page
    assert "Replay" in page


def test_an_order_in_flight_shows_who_holds_it_escaped_and_a_gone_holder_as_gone(
    services: Services, client: FlaskClient
) -> None:
    ref = record(services)
    hostile = f"w{HOSTILE}@h/1/a"  # a holder as written in Redis by hand: shown, escaped
    services.ledger.claim(ref, record_detail(services, ref), "t1", 180, 5, worker=hostile)
    registry = Liveness(services.redis)
    registry.beat(hostile, lost_after=30, look_every=60, look=False)
    page = client.get(f"/orders/pax8/{ref.id}").get_data(as_text=True)
    assert "<h2>Held by</h2>" in page and "<script>" not in page
    assert re.search(r"Claimed by</dt><dd>w&lt;script&gt;.*, alive \(heartbeat \d+s ago\)", page)
    seconds, _ = services.redis.time()
    services.redis.zadd("ff:workers", {hostile: seconds - 40})
    page = client.get(f"/orders/pax8/{ref.id}").get_data(as_text=True)
    assert re.search(r", gone \(no heartbeat for 4\ds; its messages go back now\)", page)
    services.ledger.mark_dead(ref, "given up")
    assert "<h2>Held by</h2>" not in client.get(f"/orders/pax8/{ref.id}").get_data(as_text=True)


def record_detail(services: Services, ref: Ref) -> str:
    found = services.ledger.get(ref)
    assert found is not None
    return found.detail_id


def test_every_page_sends_the_security_headers(services: Services, client: FlaskClient) -> None:
    ref = record(services)
    for path in ("/orders", f"/orders/pax8/{ref.id}", "/attention", "/reconcile", "/webhooks"):
        response = client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert "default-src 'none'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "<script" not in response.get_data(as_text=True)


def test_replay_needs_the_csrf_token_and_follows_the_cli_rules(
    services: Services, client: FlaskClient
) -> None:
    ref = record(services)
    services.ledger.mark_dead(ref, "vendor still failing after 10 retries")
    publisher = services.publisher
    assert isinstance(publisher, RecordingPublisher)
    before = len(publisher.provisioned)
    url = f"/orders/pax8/{ref.id}/replay"
    assert client.post(url, data={}).status_code == 400
    assert client.post(url, data={"csrf_token": "forged"}).status_code == 400
    assert services.ledger.get(ref).state is State.DEAD  # type: ignore[union-attr]

    token = csrf(client, f"/orders/pax8/{ref.id}")
    done = client.post(url, data={"csrf_token": token}, follow_redirects=True)
    assert "was dead; enqueued it again (same Idempotency-Key)" in done.get_data(as_text=True)
    assert services.ledger.get(ref).state is State.QUEUED  # type: ignore[union-attr]
    assert len(publisher.provisioned) == before + 1
    # Now in flight: the same refusal as fulfill replay.
    again = client.post(url, data={"csrf_token": token}, follow_redirects=True)
    assert "is in flight (queued)" in again.get_data(as_text=True)
    assert len(publisher.provisioned) == before + 1


def test_the_attention_page_lists_dead_and_failed_with_replay(
    services: Services, client: FlaskClient
) -> None:
    dead, failed, fine = record(services), record(services), record(services)
    services.ledger.mark_dead(dead, "given up")
    claim = services.ledger.claim(failed, _detail(services, failed), "t", 60, 5)
    assert claim.action == "claimed"
    services.ledger.finish(failed, _detail(services, failed), "t", "Fail", message="no seats")
    page = client.get("/attention").get_data(as_text=True)
    assert dead.id in page and failed.id in page and fine.id not in page
    assert page.count(">Replay</button>") == 2
    assert "<h2>Dead (1)</h2>" in page and "<h2>Failed (1)</h2>" in page


def _detail(services: Services, ref: Ref) -> str:
    found = services.ledger.get(ref)
    assert found is not None
    return found.detail_id


def test_reconcile_now_runs_one_reconciliation(
    services: Services, client: FlaskClient, pax8: Pax8World
) -> None:
    (created,) = pax8.bulk(1, order={"provisionRequest": {"type": "NetNew"}})
    token = csrf(client, "/reconcile")
    assert client.post("/reconcile", data={}).status_code == 400
    page = client.post("/reconcile", data={"csrf_token": token}).get_data(as_text=True)
    assert "<h2>This run</h2>" in page
    assert re.search(r"<dt>Enqueued</dt><dd>1</dd>", page), page
    assert services.ledger.get(Ref(Scope.PAX8, created["id"])) is not None
    assert "1 run(s) so far." in page


def test_the_webhooks_page_shows_configurations_and_live_credentials_masked(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    provisioner = pax8.client.provisioner(simulation=False)
    assert provisioner.id is not None
    created = pax8.client.create_webhook(provisioner.id, "https://fulfil.example.com/webhooks/pax8")
    credential = created.shared_secret.credential
    services = make_services(
        pax8_webhook_secrets=f"{credential},old-secret-nobody-has", console_anonymous=True
    )
    page = console_client(services).get("/webhooks").get_data(as_text=True)
    assert credential not in page and "old-secret-nobody-has" not in page
    assert f"********{credential[-4:]}" in page
    assert "https://fulfil.example.com/webhooks/pax8" in page
    assert "no configuration at Pax8 carries it: it can go" in page
    assert f'live (configuration <span class="id">{created.id}</span>)' in page


def test_the_doctor_page_shows_the_last_run_escaped_and_checks_now_with_the_token(
    services: Services, client: FlaskClient
) -> None:
    assert "No doctor run stored yet" in client.get("/doctor").get_data(as_text=True)
    row = Check("vendor", "vendor", Status.FAIL, HOSTILE, "fix " + HOSTILE)
    doctor_store.save(services.ledger, Report((row,), time.time(), "9.9"))
    page = client.get("/doctor").get_data(as_text=True)
    assert "<script>" not in page and "<img src=x" not in page
    assert page.count("&lt;script&gt;alert(") == 2  # the detail and the fix
    assert "Last run: fail" in page and "0 ok, 0 warn, 1 fail" in page
    token = csrf(client, "/doctor")
    assert client.post("/doctor", data={}).status_code == 400
    page = client.post("/doctor", data={"csrf_token": token}).get_data(as_text=True)
    assert "This run:" in page
    stored = doctor_store.load(services.ledger)
    assert stored is not None and [c.name for c in stored.checks] == list(NAMES)
    for check in stored.checks:
        assert f"<td>{html.escape(check.title)}</td>" in page
    assert PROD_SECRET not in page


def test_without_users_only_loopback_hosts_are_answered(services: Services) -> None:
    assert console_client(services, "http://localhost:8090").get("/orders").status_code == 200
    assert console_client(services, "http://[::1]:8090").get("/orders").status_code == 200
    rebound = console_client(services, "http://attacker.example:8090").get("/orders")
    assert rebound.status_code == 400
    assert "127.0.0.1 or localhost only" in rebound.get_data(as_text=True)


def test_with_users_every_request_needs_basic_auth(make_services: ServicesFactory) -> None:
    entry = f"ops:{generate_password_hash('correct horse')}"
    services = make_services(console_users=entry, console_host="0.0.0.0")
    services.settings.require("console")
    client = console_client(services, "http://console.internal:8090")
    refused = client.get("/orders")
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert client.get("/orders", auth=("ops", "wrong")).status_code == 401
    assert client.get("/orders", auth=("nobody", "correct horse")).status_code == 401
    assert client.get("/orders", auth=("ops", "correct horse")).status_code == 200
    with client.get("/static/console.css", auth=("ops", "correct horse")) as css:
        assert css.status_code == 200 and "text/css" in css.content_type


def test_the_console_refuses_to_listen_beyond_loopback_without_users(
    make_services: ServicesFactory,
) -> None:
    services = make_services(console_host="0.0.0.0", console_anonymous=True)
    with pytest.raises(ConfigError) as refused:
        services.settings.require("console")
    assert refused.value.variable == "CONSOLE_USERS"
    make_services(console_host="127.0.0.1", console_anonymous=True).settings.require("console")


def test_without_users_anonymous_loopback_must_be_asked_for_by_name(
    make_services: ServicesFactory,
) -> None:
    # A reverse proxy on this host that forwards Host: 127.0.0.1:8090 looks exactly like a
    # local browser: so no users means no console, unless CONSOLE_ANONYMOUS says otherwise.
    bare = make_services()
    with pytest.raises(ConfigError) as refused:
        bare.settings.require("console")
    assert refused.value.variable == "CONSOLE_USERS" and "CONSOLE_ANONYMOUS" in str(refused.value)
    proxied = console_client(bare).get("/orders", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 403  # a console built anyway lets nobody in
    assert console_client(bare).get("/orders").status_code == 403
    behind = make_services(console_anonymous=True, console_proxies=1)
    with pytest.raises(ConfigError, match="CONSOLE_PROXIES"):
        behind.settings.require("console")
    entry = f"ops:{generate_password_hash('correct horse battery')}"
    both = make_services(console_anonymous=True, console_users=entry)
    with pytest.raises(ConfigError, match="CONSOLE_ANONYMOUS"):
        both.settings.require("console")


def test_a_lone_surrogate_from_a_webhook_is_shown_escaped_not_a_500(
    services: Services, client: FlaskClient
) -> None:
    # Valid JSON, accepted by the receiver: "\ud800" decodes to a lone surrogate, which
    # UTF-8 cannot carry.
    raw = json.dumps(notification(companyName="\ud800Acme", details={"note": "x\udfff"})).encode()
    assert b"\\ud800" in raw
    notice, _ = parse_pax8(raw)
    accept(services.ledger, services.publisher, notice, services.settings.routes)
    services.ledger.mark_dead(notice.ref, "adapter error")
    for path in (f"/orders/pax8/{notice.ref.id}", "/orders", "/attention"):
        response = client.get(path)
        assert response.status_code == 200, path
    page = client.get(f"/orders/pax8/{notice.ref.id}").get_data(as_text=True)
    assert "\\ud800Acme" in page and "x\\udfff" in page
    token = csrf(client, f"/orders/pax8/{notice.ref.id}")
    replayed = client.post(
        f"/orders/pax8/{notice.ref.id}/replay", data={"csrf_token": token}, follow_redirects=True
    )
    assert replayed.status_code == 200 and "enqueued it again" in replayed.get_data(as_text=True)


def _users(make_services: ServicesFactory, **settings: Any) -> Services:
    entry = f"ops:{generate_password_hash('correct horse battery')}"
    return make_services(console_users=entry, **settings)


def browsers(services: Services, *addresses: str) -> list[FlaskClient]:
    """Clients of one console (one process), each from its own address."""
    app = create_console(services.settings, services)
    app.test_client_class = HostClient
    found = []
    for address in addresses:
        client = app.test_client()
        assert isinstance(client, HostClient)
        client.base_url = "http://console.internal:8090"
        client.environ_base["REMOTE_ADDR"] = address
        found.append(client)
    return found


def test_failed_sign_ins_are_logged_and_throttled_per_user_and_per_client(
    make_services: ServicesFactory, caplog: pytest.LogCaptureFixture
) -> None:
    services = _users(make_services)
    guesser, operator, fresh, spray = browsers(
        services, "198.51.100.7", "192.0.2.10", "203.0.113.1", "198.51.100.99"
    )
    right = ("ops", "correct horse battery")
    assert operator.get("/orders", auth=right).status_code == 200  # signed in before
    caplog.set_level("WARNING", logger="console")
    # Five wrong passwords for one name: each answered 401 and logged, without the password.
    for attempt in range(5):
        wrong = guesser.get("/orders", auth=("ops", f"guess-{attempt}-Zq9"))
        assert wrong.status_code == 401
    failures = [r.getMessage() for r in caplog.records if "sign-in failed" in r.getMessage()]
    assert failures == ["console: sign-in failed for user ops from 198.51.100.7"] * 5
    assert not [r for r in caplog.records if "Zq9" in r.getMessage()]
    # The name is locked now, even with its password, from anywhere; no hash is computed.
    locked = guesser.get("/orders", auth=right)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 800
    assert fresh.get("/orders", auth=right).status_code == 429
    # The operator's browser, whose credential was verified minutes ago, goes on.
    assert operator.get("/orders", auth=right).status_code == 200
    # Per client: ten failures over many names lock the client, for every name.
    for index in range(10):
        assert spray.get("/orders", auth=(f"user{index}", "x")).status_code == 401
    assert spray.get("/orders", auth=("someone-else", "x")).status_code == 429
    # A password typed into the name field is not logged as a name.
    caplog.clear()
    assert fresh.get("/orders", auth=("hunter2 !secret", "x")).status_code == 401
    (line,) = [r.getMessage() for r in caplog.records if "sign-in failed" in r.getMessage()]
    assert "hunter2" not in line and "(not a user name, 15 characters)" in line
    # A name with control characters cannot forge a line.
    caplog.clear()
    fresh.get("/orders", auth=("ops\nFAKE", "x"))
    assert all("\n" not in r.getMessage() for r in caplog.records)


def test_the_session_cookie_is_secure_over_tls_or_behind_a_trusted_tls_proxy(
    make_services: ServicesFactory,
) -> None:
    right = ("ops", "correct horse battery")
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.44"}

    def cookie(services: Services, base: str, headers: dict[str, str]) -> str:
        client = console_client(services, base)
        response = client.get("/reconcile", auth=right, headers=headers)
        assert response.status_code == 200
        (set_cookie,) = response.headers.getlist("Set-Cookie")
        return set_cookie

    direct = _users(make_services)
    assert "Secure" not in cookie(direct, "http://console.internal:8090", {})
    assert "Secure" in cookie(direct, "https://console.internal:8090", {})
    # Without CONSOLE_PROXIES a forwarded header is anybody's word: not trusted.
    assert "Secure" not in cookie(direct, "http://console.internal:8090", https)
    proxied = _users(make_services, console_proxies=1)
    assert "Secure" in cookie(proxied, "http://console.internal:8090", https)
    assert "Secure" not in cookie(proxied, "http://console.internal:8090", {})
    assert "HttpOnly" in cookie(proxied, "http://console.internal:8090", https)


def test_a_redis_outage_is_a_503_page_without_details() -> None:
    settings = make_settings("redis://:hunter2-hunter2@127.0.0.1:1/0", console_anonymous=True)
    services = Services(settings, use=RedisUse.CLI, publisher=RecordingPublisher())
    response = console_client(services).get("/orders")
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "Redis does not answer" in page and "hunter2" not in page and ":1" not in page


def test_the_orders_and_an_order_page_name_each_orders_backend(
    make_services: ServicesFactory, tmp_path: Path
) -> None:
    moved_from, moved_to, unknown = (str(uuid.uuid4()) for _ in range(3))
    routes = tmp_path / "routes.toml"
    routes.write_text(
        'unknown_products = "refuse"\n'
        f'[routes.backup]\nadapter = "example"\nproducts = ["{moved_from}"]\n'
        f'[routes.archive]\nadapter = "example"\nproducts = ["{moved_to}"]\n'
    )
    services = make_services(console_anonymous=True, vendor_routes=routes)
    client = console_client(services)
    moved = record(
        services, request_type="ChangeProduct", productId=moved_to, oldProductId=moved_from
    )
    refused = record(services, productId=unknown)
    listing = client.get("/orders").get_data(as_text=True)
    backends = re.findall(r'<td class="backend">([^<]*)</td>', listing)
    assert sorted(backends) == ["-", "archive"]
    page = client.get(f"/orders/{moved.scope}/{moved.id}").get_data(as_text=True)
    assert re.search(r'class="backend">archive \(moved from backup\)</dd>', page), page
    none = client.get(f"/orders/{refused.scope}/{refused.id}").get_data(as_text=True)
    assert "none: no route takes its product" in none


def test_the_footer_shows_the_release_and_the_ledger_schema(
    services: Services, client: FlaskClient
) -> None:
    record(services)
    migrate(services.ledger)
    page = client.get("/orders").get_data(as_text=True)
    footer = re.sub(r"\s+", " ", page.split("<footer>")[1].split("</footer>")[0]).strip()
    assert footer == f"pax8-fulfillment {__version__} · ledger schema {LEDGER_SCHEMA}"
    services.redis.hset("ff:schema", "version", LEDGER_SCHEMA + 1)  # a newer release migrated
    page = client.get("/orders").get_data(as_text=True)
    assert f"ledger schema {LEDGER_SCHEMA + 1} (this release reads up to {LEDGER_SCHEMA})" in page
