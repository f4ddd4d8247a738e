"""Several products, several backends, one deployment: the routes file end to end.

Real processes from the Procfile, the sandbox as Pax8, two HTTP backends (vendor stubs with
tokens of their own) and one Python adapter, routed by a routes file. Each order must be
provisioned once, at its product's backend and nowhere else, and reported once; a
ChangeProduct across backends reaches the new product's backend with the previous route; a
product no route takes gets one Fail and a Sentry alert; a CloudBlue call whose products
belong to two backends is refused; a routes file edited while an order waits sends it
nowhere else; and a bad routes file stops every process at start with one line.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fulfillment.ledger.refs import Ref, Scope
from tests.support.adapters import calls
from tests.support.cloudblue import SECRET as CLOUDBLUE_SECRET
from tests.support.cloudblue import payload, post
from tests.support.procs import ROOT, Proc, procfile_command, wait_until
from tests.support.sentry_server import SentryServer
from tests.support.stack import Stack
from tests.support.vendor_stub import VendorStub
from tests.test_cli import run

BACKUP, ARCHIVE, MAIL, NOWHERE = (str(uuid.uuid4()) for _ in range(4))
BACKUP_TOKEN, ARCHIVE_TOKEN = "backup-backend-token-1", "archive-backend-token-2"


def routes_text(backup: VendorStub, archive: VendorStub, swap: bool = False) -> str:
    """Three routes; unknown products refused. ``swap``: BACKUP's product moved to archive."""
    first, second = (ARCHIVE, BACKUP) if swap else (BACKUP, ARCHIVE)
    return textwrap.dedent(
        f"""
        unknown_products = "refuse"

        [routes.backup]
        products = ["{first}"]
        mpns = ["BKP-SEATS"]
        adapter = "http"
        url = "{backup.url}"
        token_env = "BACKUP_TOKEN"
        timeout_seconds = 5

        [routes.archive]
        products = ["{second}"]
        mpns = ["ARC-GB"]
        adapter = "http"
        url = "{archive.url}"
        token_env = "ARCHIVE_TOKEN"
        timeout_seconds = 5

        [routes.mail]
        products = ["{MAIL}"]
        adapter = "tests.support.adapters:RecordingAdapter"
        """
    )


@pytest.fixture(scope="module")
def backup() -> Iterator[VendorStub]:
    with VendorStub(token=BACKUP_TOKEN) as stub:
        yield stub


@pytest.fixture(scope="module")
def archive() -> Iterator[VendorStub]:
    with VendorStub(token=ARCHIVE_TOKEN) as stub:
        yield stub


@pytest.fixture(scope="module")
def sentry() -> Iterator[SentryServer]:
    with SentryServer() as server:
        yield server


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("routes-file") / "routes.toml"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    backup: VendorStub,
    archive: VendorStub,
    sentry: SentryServer,
    routes: Path,
) -> Iterator[Stack]:
    routes.write_text(routes_text(backup, archive))
    running = Stack(
        tmp_path_factory.mktemp("routes"),
        env={
            "VENDOR_ADAPTER": "",  # the routes file names every backend
            "VENDOR_ROUTES": str(routes),
            "BACKUP_TOKEN": BACKUP_TOKEN,
            "ARCHIVE_TOKEN": ARCHIVE_TOKEN,
            "SENTRY_DSN": sentry.dsn,
            "CLOUDBLUE_WEBHOOK_SECRETS": CLOUDBLUE_SECRET,
            "CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS": "20",
        },
    )
    try:
        running.start_receiver()
        yield running
    finally:
        running.stop()


def place(stack: Stack, **request: Any) -> str:
    """An order at the sandbox, its webhook posted to the receiver; the request id."""
    body = stack.sandbox_notification(**request)
    assert stack.post_webhook(body).status_code == 202
    return str(body["provisionRequest"]["id"])


def queued_ids(stack: Stack, queue: str) -> list[str]:
    """The request ids of the task messages waiting on ``queue``."""
    bodies = [json.loads(raw)["body"] for raw in stack.redis().lrange(queue, 0, -1)]
    return [json.loads(base64.b64decode(body))[0][0] for body in bodies]


def seen(stub: VendorStub) -> set[str]:
    return {call.order["provisionRequest"]["id"] for call in stub.calls}


def test_each_product_is_provisioned_once_at_its_backend_and_reported_once(
    stack: Stack, backup: VendorStub, archive: VendorStub, sentry: SentryServer
) -> None:
    worker = stack.start_worker("worker-routes")
    try:
        subscription = str(uuid.uuid4())
        at_backup = place(stack, productId=BACKUP, subscriptionId=subscription)
        at_archive = place(stack, productId=ARCHIVE)
        at_mail = place(stack, productId=MAIL)
        unknown = place(stack, productId=NOWHERE)
        first = [at_backup, at_archive, at_mail, unknown]
        for request_id in first:
            stack.wait_state(request_id, "reported")
        # The subscription moves to a product another backend provisions.
        moved = place(
            stack,
            type="ChangeProduct",
            subscriptionId=subscription,
            oldProductId=BACKUP,
            productId=ARCHIVE,
        )
        stack.wait_state(moved, "reported")

        # Each order once, at its product's backend, and nowhere else.
        assert seen(backup) == {at_backup}
        assert seen(archive) == {at_archive, moved}
        assert [p["requestId"] for p in backup.provisionings()] == [at_backup]
        assert sorted(p["requestId"] for p in archive.provisionings()) == sorted(
            [at_archive, moved]
        )
        (mail_call,) = calls(stack.redis())
        assert (mail_call["requestId"], mail_call["route"]) == (at_mail, "mail")
        # The ChangeProduct reached the new product's backend, saying where it came from.
        (change,) = archive.calls_for(moved)
        assert change.order["route"] == "archive" and change.order["previousRoute"] == "backup"
        assert change.order["provisionRequest"]["oldProductId"] == BACKUP
        assert change.headers["authorization"] == f"Bearer {ARCHIVE_TOKEN}"
        assert backup.calls_for(at_backup)[0].headers["authorization"] == f"Bearer {BACKUP_TOKEN}"

        # Each reported once: Success where a backend provisioned it, one Fail for the
        # product no route takes.
        for request_id in (at_backup, at_archive, at_mail, moved):
            (result,) = stack.sandbox.results(request_id=request_id)
            assert result["status"] == "Success", request_id
        (refused,) = stack.sandbox.results(request_id=unknown)
        assert refused["status"] == "Fail"
        assert f"does not provision product {NOWHERE}" in refused["errorMessage"]
        for request_id, route in (
            (at_backup, "backup"),
            (at_archive, "archive"),
            (at_mail, "mail"),
            (moved, "archive"),
            (unknown, "-"),
        ):
            record = stack.record(Ref(Scope.PAX8, request_id))
            assert record is not None and record.route == route

        # The vendor hears of the product nobody provisions, tagged with the order.
        alert = wait_until(
            lambda: next(
                (
                    e
                    for e in sentry.events()
                    if (e.get("tags") or {}).get("provision_request_id") == unknown
                ),
                None,
            ),
            20,
            message=lambda: f"no Sentry alert for {unknown}: {sentry.events()}",
        )
        assert alert["exception"]["values"][-1]["type"] == "Unrouted"
    finally:
        worker.stop()


def test_a_cloudblue_call_is_routed_by_mpn_and_refused_across_backends(
    stack: Stack, backup: VendorStub, archive: VendorStub
) -> None:
    worker = stack.start_worker("worker-cloudblue")
    base = f"{stack.receiver_url}/webhooks/cloudblue"
    client = httpx.Client(timeout=30)
    try:
        before_backup, before_archive = len(backup.calls), len(archive.calls)
        single = payload(products=[{"mpn": "BKP-SEATS", "limit": 3}])
        answered = post(client, base, single)
        assert answered.status_code == 200, answered.text
        assert len(backup.calls) == before_backup + 1 and len(archive.calls) == before_archive
        assert backup.calls[-1].order["route"] == "backup"
        mixed = payload(products=[{"mpn": "BKP-SEATS", "limit": 3}, {"mpn": "ARC-GB", "limit": 9}])
        refused = post(client, base, mixed)
        assert refused.status_code == 422, refused.text
        message = refused.json()["error"]
        assert "(BKP-SEATS, ARC-GB) are provisioned by different systems" in message
        assert len(backup.calls) == before_backup + 1 and len(archive.calls) == before_archive
        # The platform's retry is answered from the ledger: still refused, still no call.
        assert post(client, base, mixed).status_code == 422
        assert len(backup.calls) == before_backup + 1 and len(archive.calls) == before_archive
    finally:
        client.close()
        worker.stop()


def test_a_routes_file_edited_while_an_order_waits_sends_it_nowhere_else(
    stack: Stack, backup: VendorStub, archive: VendorStub, routes: Path
) -> None:
    # No worker: the order waits in its route's queue, recorded with route backup.
    waiting = place(stack, productId=BACKUP)
    record = stack.wait_state(waiting, "queued")
    assert record.route == "backup"
    assert waiting in queued_ids(stack, "fulfillment.route.backup")
    assert waiting not in queued_ids(stack, "fulfillment.route.archive")
    routes.write_text(routes_text(backup, archive, swap=True))
    try:
        # A worker started with the edited file (the product is archive's now) runs it.
        worker = stack.start_worker("worker-edited")
        try:
            stack.wait_state(waiting, "reported")
        finally:
            worker.stop()
    finally:
        routes.write_text(routes_text(backup, archive))
    assert waiting in seen(backup) and waiting not in seen(archive)
    (result,) = stack.sandbox.results(request_id=waiting)
    assert result["status"] == "Success"


BASE = {
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "PAX8_CLIENT_ID": "id",
    "PAX8_CLIENT_SECRET": "base-client-secret",
    "PAX8_WEBHOOK_SECRETS": "base-webhook-secret-one",
    "VENDOR_ADAPTER": "",
}
GOOD_ROUTE = 'unknown_products = "refuse"\n[routes.a]\nadapter = "example"\nproducts = ["p1"]\n'
BAD_FILES = [
    ("malformed", "unknown_products = [\n", None, "not valid TOML"),
    (
        "product-twice",
        GOOD_ROUTE + '[routes.b]\nadapter = "example"\nproducts = ["p1"]\n',
        "b",
        "product p1 is in route a too",
    ),
    (
        "unknown-adapter",
        'unknown_products = "refuse"\n[routes.a]\nadapter = "soap"\n',
        "a",
        "adapter 'soap' is not example, http or package.module:Class",
    ),
]


@pytest.mark.parametrize("line", ["web", "worker", "beat"])
@pytest.mark.parametrize(("name", "text", "route", "problem"), BAD_FILES)
def test_a_bad_routes_file_stops_each_process_with_one_line(
    tmp_path: Path, line: str, name: str, text: str, route: str | None, problem: str
) -> None:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    where = f"{path}: route {route}" if route else str(path)
    stops_with(tmp_path, line, {"VENDOR_ROUTES": str(path)}, f"{where}: {problem}")


@pytest.mark.parametrize(
    ("adapter", "env", "problem"),
    [
        (
            'adapter = "acme.vendor:Missing"',
            {},
            "route a: production: cannot import 'acme.vendor'",
        ),
        (
            'adapter = "http"\nurl = "https://a.example/orders"\ntoken_env = "A_TOKEN"',
            {},
            "route a: production: token_env names A_TOKEN, which is not set",
        ),
    ],
)
def test_a_worker_stops_on_an_adapter_it_cannot_load_or_a_token_it_lacks(
    tmp_path: Path, adapter: str, env: dict[str, str], problem: str
) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(f'unknown_products = "refuse"\n[routes.a]\n{adapter}\n')
    stops_with(tmp_path, "worker", {"VENDOR_ROUTES": str(path), **env}, f"{path}: {problem}")


def stops_with(tmp_path: Path, line: str, env: dict[str, str], expected: str) -> None:
    """Start the Procfile line ``line``: it must exit at start with exactly one line,
    ``fulfillment: configuration error: VENDOR_ROUTES: <expected>...``."""
    environment = {**BASE, "PORT": "18998", "BEAT_SCHEDULE_FILE": str(tmp_path / "s"), **env}
    proc = Proc(f"{line}-bad-routes", procfile_command(line), environment, tmp_path)
    try:
        code = proc.popen.wait(60)
    except subprocess.TimeoutExpired:
        proc.stop()
        pytest.fail(f"{line} kept running with a bad routes file\n{proc.describe()}")
    finally:
        proc.stop()
    assert code != 0
    errors = [x for x in proc.log().splitlines() if "configuration error" in x]
    assert len(errors) == 1, proc.log()
    assert errors[0].startswith(f"fulfillment: configuration error: VENDOR_ROUTES: {expected}"), (
        errors[0]
    )


def test_the_cli_spreads_orders_over_backends_names_them_and_checks_each_endpoint(
    stack: Stack, backup: VendorStub, archive: VendorStub
) -> None:
    """``fulfill simulate --product`` reaches several backends, ``fulfill status`` names each
    order's, ``fulfill check-vendor`` checks each http backend of the file with its token."""
    worker = stack.start_worker("worker-cli")
    env = {**stack.env, "PYTHONPATH": str(ROOT)}
    try:
        done = run(
            env, "simulate", "--product", BACKUP, "--product", ARCHIVE, "--count", "4", "--json"
        )
        assert done.returncode == 0, done.stderr
        entries = json.loads(done.stdout)
        routes = [entry["result"]["route"] for entry in entries]
        assert routes == ["backup", "archive", "backup", "archive"]
        ids = [entry["requestId"] for entry in entries]
        assert {ids[0], ids[2]} <= seen(backup) and {ids[1], ids[3]} <= seen(archive)
        assert not {ids[1], ids[3]} & seen(backup)
    finally:
        worker.stop()
    listing = run(env, "status", "--limit", "50")
    assert listing.returncode == 0, listing.stderr
    for request_id, route in zip(ids, routes, strict=True):
        line = next(line for line in listing.stdout.splitlines() if line.startswith(request_id))
        assert re.search(rf"NetNew\s+sim\s+{route}\s+reported\s+Success", line), line
    one = run(env, "status", ids[1])
    assert re.search(r"backend\s+archive", one.stdout), one.stdout

    # Every http backend of the routes file, each with its token (the stubs demand theirs).
    checked = run(env, "check-vendor", timeout=240)
    assert checked.returncode in (0, 1), checked.stderr
    assert f"route backup (production): {backup.url}" in checked.stdout
    assert f"route archive (production): {archive.url}" in checked.stdout
    assert "a call without the token is refused" in checked.stdout
    assert "bad token" not in checked.stdout  # each endpoint got its own token
    for token in (BACKUP_TOKEN, ARCHIVE_TOKEN):
        assert token not in checked.stdout + checked.stderr
    one_route = run(env, "check-vendor", "--route", "archive", timeout=240)
    assert "route archive (production)" in one_route.stdout
    assert "route backup" not in one_route.stdout
    missing = run(env, "check-vendor", drop=("ARCHIVE_TOKEN",))
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"fulfillment: configuration error: VENDOR_ROUTES: {stack.env['VENDOR_ROUTES']}: "
        "route archive: production: token_env names ARCHIVE_TOKEN, which is not set in this "
        "process's environment"
    )
    unknown = run(env, "check-vendor", "--route", "billing")
    assert unknown.returncode == 2 and "billing is not a route of" in unknown.stderr
