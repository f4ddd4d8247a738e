"""``fulfill`` as a user runs it: every command as a subprocess against real processes.

The module's stack (conftest: redis-server, the sandbox, gunicorn and one celery worker)
is the system under test; the commands get its environment, exactly the settings an
operator would export. Ledger states that are hard to reach on purpose (dead, failed,
provisioned but not reported) are written through the ledger's own transitions, for
requests that really exist at the sandbox, so the replayed orders finish for real.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from cli.redis_server import RedisServer, free_port, port_open
from config.version import LEDGER_SCHEMA, MESSAGE_FORMAT, __version__
from fulfillment.intake.notifications import parse_pax8
from fulfillment.ledger import Notice
from fulfillment.ledger.liveness import Liveness
from tests.support.procs import ROOT, Proc
from tests.support.sandbox import notification_from
from tests.support.stack import Stack, unique_domain


def fulfill_command() -> list[str]:
    """The installed ``fulfill`` script beside this Python, else ``python -m cli.main``."""
    script = Path(sys.executable).parent / "fulfill"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def run(
    env: Mapping[str, str], *args: str, drop: tuple[str, ...] = (), timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``fulfill args`` with ``env`` on top of ours (minus ``drop``)."""
    full = {**os.environ, **env}
    for name in drop:
        full.pop(name, None)
    return subprocess.run(
        [*fulfill_command(), *args],
        env=full,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a run that must have exited 0."""
    assert result.returncode == 0, f"rc {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def fulfill(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``fulfill args`` with the stack's settings."""
    return run({**stack.env, **env}, *args)


def simulate_one(stack: Stack, *args: str) -> dict[str, Any]:
    """``fulfill simulate ARGS --json`` for one order; its entry."""
    entries = json.loads(ok(fulfill(stack, "simulate", *args, "--json")))
    assert len(entries) == 1, entries
    return dict(entries[0])


def sandbox_notice(stack: Stack, request_type: str = "NetNew", **fields: Any) -> Notice:
    """A simulated request that exists at the sandbox (attempt Acknowledged, not delivered),
    as the notice its webhook would have carried."""
    order = {"provisionRequest": {"type": request_type, "companyDomain": unique_domain(),
                                  "subscriptionId": str(uuid.uuid4()), **fields}}  # fmt: skip
    created = stack.sandbox.bulk(1, "simulation", order, attempt_status="Acknowledged")[0]
    body = notification_from(stack.sandbox.request(created["id"]), simulation=True)
    notice, _ = parse_pax8(json.dumps(body).encode())
    return notice


def history_states(stack: Stack, request_id: str) -> list[str]:
    """The states the record went through, oldest first."""
    return [entry["state"] for entry in stack.ledger.history(request_id)]


# -- help, settings, unreachable dependencies --------------------------------------------------


def test_help_documents_commands_and_exit_codes(stack: Stack) -> None:
    text = ok(fulfill(stack, "--help"))
    for command in ("status", "replay", "reconcile", "webhooks", "simulate", "sandbox", "dev",
                    "migrate"):  # fmt: skip
        assert re.search(rf"^\s+{command}\s", text, re.MULTILINE), command
    assert "Exit codes" in text
    for code in ("0  ok", "1  the command could not", "2  usage or configuration", "3  a dep",
                 "4  the ledger's data is of a newer schema"):  # fmt: skip
        assert code in text
    for command in (["status"], ["replay"], ["reconcile"], ["webhooks", "create"],
                    ["webhooks", "list"], ["simulate"], ["sandbox"], ["dev"]):  # fmt: skip
        assert "Examples:" in ok(fulfill(stack, *command, "--help")), command


def test_version_is_the_installed_package_version() -> None:
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = run({}, "--version")
    assert ok(result).strip() == (
        f"fulfill (pax8-fulfillment) {expected}, ledger schema {LEDGER_SCHEMA}, "
        f"message format {MESSAGE_FORMAT}"
    )


def test_a_missing_setting_is_exit_2_naming_it(stack: Stack) -> None:
    result = run(stack.env, "simulate", drop=("PAX8_SIMULATION_CLIENT_ID",
                                               "PAX8_SIMULATION_CLIENT_SECRET"))  # fmt: skip
    assert result.returncode == 2, result
    assert result.stderr.startswith("fulfillment: configuration error: PAX8_SIMULATION_CLIENT_ID")
    assert result.stdout == ""

    no_credentials = ("PAX8_CLIENT_ID", "PAX8_CLIENT_SECRET",
                      "PAX8_SIMULATION_CLIENT_ID", "PAX8_SIMULATION_CLIENT_SECRET")  # fmt: skip
    result = run(stack.env, "reconcile", drop=no_credentials)
    assert result.returncode == 2, result
    assert "fulfillment: configuration error: PAX8_CLIENT_ID:" in result.stderr

    result = run({**stack.env, "REDIS_URL": "http://127.0.0.1:6379"}, "status")
    assert result.returncode == 2, result
    assert result.stderr.strip() == (
        "fulfillment: configuration error: REDIS_URL: must start with redis:// or rediss://"
    )


def test_a_bad_option_is_exit_2(stack: Stack) -> None:
    result = fulfill(stack, "status", "--limit", "many")
    assert result.returncode == 2
    assert "--limit" in result.stderr


def test_redis_unreachable_is_exit_3_naming_the_url(stack: Stack) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    for args in (["status"], ["replay", str(uuid.uuid4())], ["simulate"]):
        result = fulfill(stack, *args, REDIS_URL=closed)
        assert result.returncode == 3, (args, result)
        assert f"REDIS_URL={closed}" in result.stderr


def test_migrate_says_what_the_data_is_and_brings_it_to_this_schema(
    stack: Stack, tmp_path: Path
) -> None:
    # The stack's receiver stamped its Redis as it started: nothing to do.
    checked = ok(fulfill(stack, "migrate", "--check"))
    assert f"ledger data   schema {LEDGER_SCHEMA} (stamped by {__version__}) at " in checked
    assert checked.endswith("to do         nothing\n")
    assert ok(fulfill(stack, "migrate")) == (
        f"ledger: schema {LEDGER_SCHEMA} (stamped by {__version__}); "
        f"this release reads up to {LEDGER_SCHEMA}\n"
    )

    # 0.1.0's data carries no stamp: --check says so (exit 1), a command that reads the
    # ledger stamps it as it starts (nothing rewritten), and then there is nothing to do.
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    try:
        other = {"REDIS_URL": server.url}
        client = redis.Redis.from_url(server.url, decode_responses=True)
        client.hset("ff:req:pax8:from-0-1-0", mapping={"id": "from-0-1-0", "state": "reported"})
        client.zadd("ff:index", {"pax8:from-0-1-0": 1.0})
        pending = fulfill(stack, "migrate", "--check", **other)
        assert pending.returncode == 1, pending
        assert "ledger data   no schema stamp: data of 0.1.0" in pending.stdout
        assert f"to do         stamp schema {LEDGER_SCHEMA} (nothing to rewrite)" in pending.stdout
        ok(fulfill(stack, "status", **other))
        assert client.hgetall("ff:schema")["from"] == "unversioned"
        assert ok(fulfill(stack, "migrate", "--check", **other)).endswith("nothing\n")
        client.flushall()
        done = ok(fulfill(stack, "migrate", **other))
        assert done == f"ledger: empty; stamped schema {LEDGER_SCHEMA}\n"
        client.close()
    finally:
        server.stop()


def test_a_password_in_redis_url_is_never_printed(stack: Stack) -> None:
    closed = f"redis://:S3cret-Redis-Pass@127.0.0.1:{free_port()}/0"
    result = fulfill(stack, "status", REDIS_URL=closed)
    assert result.returncode == 3, result
    assert "S3cret-Redis-Pass" not in result.stderr + result.stdout
    assert f"REDIS_URL=redis://:****@127.0.0.1:{closed.rsplit(':', 1)[1]}" in result.stderr


def test_outside_text_cannot_forge_lines_or_reach_the_terminal(stack: Stack) -> None:
    notice = sandbox_notice(stack)
    ledger = stack.ledger
    ledger.accept(notice)
    assert ledger.claim(notice.ref, notice.detail_id, "t", 60, 5).action == "claimed"
    evil = "\x1b]0;pwned\x07\x1b[31mred\nforged: line"
    ledger.finish(notice.ref, notice.detail_id, "t", "Fail", message=evil)  # a vendor's text
    for args in (["status"], ["status", notice.request_id]):
        out = ok(fulfill(stack, *args))
        assert "\x1b" not in out and "\x07" not in out, args  # no escape reaches the terminal
        assert not any(line.startswith("forged") for line in out.splitlines()), args
    assert "\\x1b[31mred\\nforged" in ok(fulfill(stack, "status", notice.request_id))
    bad = fulfill(stack, "status", "r\x1b[2J")
    assert bad.returncode == 2 and "REQUEST_ID" in bad.stderr and "\x1b" not in bad.stderr


def test_pax8_unreachable_is_exit_3_naming_the_url(stack: Stack) -> None:
    port = free_port()
    result = fulfill(
        stack, "webhooks", "list",
        PAX8_API_URL=f"http://127.0.0.1:{port}/v2",
        PAX8_TOKEN_URL=f"http://127.0.0.1:{port}/v1/token",
    )  # fmt: skip
    assert result.returncode == 3, result
    assert f"PAX8_TOKEN_URL=http://127.0.0.1:{port}/v1/token" in result.stderr


# -- simulate ------------------------------------------------------------------------------------


def test_simulate_one_order_with_request_fields_and_details(stack: Stack) -> None:
    domain = unique_domain()
    result = fulfill(
        stack, "simulate", "--type", "NetNew",
        "--request", f"companyDomain={domain}", "--request", "quantity=4",
        "--details", f"adminEmail=it@{domain}", "--details", "seats:=[1, 2]",
    )  # fmt: skip
    out = ok(result)
    request_id = re.search(r"request ([0-9a-f-]{36})", out)
    assert request_id, out
    request_id_text = request_id.group(1)
    assert "received" in out and "reported" in out
    assert "Success  subscription sub-" in out
    assert "All 1 order(s) reached a result." in out

    dump = stack.sandbox.request(request_id_text)
    assert dump["provisionRequest"]["quantity"] == 4
    assert dump["provisionRequest"]["companyDomain"] == domain
    assert dump["details"][-1]["details"] == {"adminEmail": f"it@{domain}", "seats": [1, 2]}
    results = stack.sandbox.results(request_id=request_id_text)
    assert [r["status"] for r in results] == ["Success"]
    assert results[0]["environment"] == "simulation"


def test_simulate_count_follows_every_order(stack: Stack) -> None:
    result = fulfill(stack, "simulate", "--type", "TrialCreate", "--count", "3", "--json")
    entries = json.loads(ok(result))
    assert "Posting 3 TrialCreate orders" in result.stderr  # the progress bar
    assert len(entries) == 3
    assert len({e["requestId"] for e in entries}) == 3
    for entry in entries:
        assert entry["attemptStatus"] == "Acknowledged"
        assert entry["result"]["outcome"] == "Success", entry
        assert entry["result"]["externalIds"]["externalProvisionerSubscriptionId"]
        states = [h["state"] for h in entry["result"]["history"]]
        # "queued" may be skipped: a fast worker can claim before the receiver marks it.
        assert states[0] == "received" and states[-2:] == ["provisioned", "reported"], states
        assert "provisioning" in states
        results = stack.sandbox.results(request_id=entry["requestId"])
        assert [r["status"] for r in results] == ["Success"]


def test_simulate_prints_an_honest_fail(stack: Stack) -> None:
    subscription = str(uuid.uuid4())
    result = fulfill(
        stack, "simulate", "--type", "Deprovision", "--request", f"subscriptionId={subscription}"
    )
    out = ok(result)  # a Fail is a result: exit 0
    assert f"Fail  Subscription {subscription} is unknown to the vendor" in out


def test_simulate_without_follow_needs_no_redis(stack: Stack) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    out = ok(fulfill(stack, "simulate", "--no-follow", REDIS_URL=closed))
    request_id = re.search(r"request ([0-9a-f-]{36})  webhook Acknowledged", out)
    assert request_id, out
    stack.wait_state(request_id.group(1), "reported")


def test_simulate_exit_1_when_the_webhook_is_refused_or_no_result_comes(stack: Stack) -> None:
    stack.sandbox.add_fault(method="POST", path="webhook", action="error", status=503, times=1)
    try:
        result = fulfill(stack, "simulate")
        assert result.returncode == 1, result
        assert "webhook(s) not accepted by the receiver" in result.stderr
        assert "webhook Failed" in result.stdout

        # Pax8 refuses results for now: the order stays provisioned past the timeout.
        stack.sandbox.add_fault(
            method="POST", path="/v2/provision-requests/*/results", action="error", status=503
        )
        result = fulfill(stack, "simulate", "--timeout", "3")
        assert result.returncode == 1, result
        assert "no result within 3s" in result.stderr
        assert "(provisioned)" in result.stderr
    finally:
        stack.sandbox.clear_faults()
    request_id = re.search(r"request ([0-9a-f-]{36})", result.stdout)
    assert request_id
    stack.wait_state(request_id.group(1), "reported", timeout=60)  # the retries got through


# -- status --------------------------------------------------------------------------------------


def test_status_table_one_order_and_json(stack: Stack) -> None:
    request_id = simulate_one(stack)["requestId"]

    out = ok(fulfill(stack, "status"))
    assert re.search(r"received \d+  queued \d+  provisioning \d+", out)
    line = next(line for line in out.splitlines() if line.startswith(request_id))
    # The backend: the one route of VENDOR_ADAPTER, without a routes file.
    assert re.search(r"NetNew\s+sim\s+default\s+reported\s+Success\s+\d+[smhd]", line), line

    out = ok(fulfill(stack, "status", request_id))
    assert re.search(r"state\s+reported", out)
    assert re.search(r"backend\s+default", out)
    assert "Attempts" in out and "History" in out
    attempt = stack.ledger.attempts(request_id)[0]
    assert re.search(rf"{attempt.id}\s+\S+\s+reported", out)

    view = json.loads(ok(fulfill(stack, "status", request_id, "--json")))
    assert view["record"]["id"] == request_id
    assert view["record"]["outcome"] == "Success"
    assert [h["state"] for h in view["history"]] == history_states(stack, request_id)
    assert [a["id"] for a in view["attempts"]] == [attempt.id]

    listing = json.loads(ok(fulfill(stack, "status", "--state", "reported", "--limit", "3",
                                    "--json")))  # fmt: skip
    assert 1 <= len(listing["recent"]) <= 3
    assert {r["state"] for r in listing["recent"]} == {"reported"}
    assert listing["counts"]["reported"] >= 1


def test_status_shows_who_holds_an_order_in_flight_and_a_holder_that_is_gone(
    stack: Stack,
) -> None:
    request_id = str(uuid.uuid4())
    ref = Notice(request_id, "d1", "a1", "NetNew", False, "{}").ref
    stack.ledger.accept(Notice(request_id, "d1", "a1", "NetNew", False, "{}"))
    worker = "worker-9@host/4242/beef"
    stack.ledger.claim(ref, "d1", "task-1", 180, 5, call_seconds=120, worker=worker)
    registry = Liveness(stack.redis())
    registry.beat(worker, lost_after=30, look_every=60, look=False)

    out = ok(fulfill(stack, "status", request_id))
    assert re.search(rf"held by\s+{re.escape(worker)}, alive \(heartbeat \d+s ago\); since ", out)
    assert re.search(r"call until\s+\S+ \S+: an earlier vendor call may still run", out)

    seconds, _ = stack.redis().time()
    stack.redis().zadd("ff:workers", {worker: seconds - 45})  # silent for 45 s: gone
    out = ok(fulfill(stack, "status", request_id))
    assert re.search(rf"held by\s+{re.escape(worker)}, gone \(no heartbeat for 4\ds", out), out
    view = json.loads(ok(fulfill(stack, "status", request_id, "--json")))
    claim = view["holding"]["claim"]
    assert claim["worker"] == worker and claim["heartbeat"]["alive"] is False
    stack.ledger.finish(ref, "d1", "task-1", "Success")
    assert json.loads(ok(fulfill(stack, "status", request_id, "--json")))["holding"] is None
    assert "held by" not in ok(fulfill(stack, "status", request_id))


def test_status_of_an_unknown_order_is_exit_1(stack: Stack) -> None:
    unknown = str(uuid.uuid4())
    result = fulfill(stack, "status", unknown)
    assert result.returncode == 1
    assert f"no order {unknown} in the ledger" in result.stderr


# -- replay --------------------------------------------------------------------------------------


def test_replay_a_dead_order_provisions_it_again(stack: Stack) -> None:
    notice = sandbox_notice(stack)
    stack.ledger.accept(notice)
    stack.ledger.mark_dead(notice.ref, "the vendor was unreachable (test)")

    out = ok(fulfill(stack, "replay", notice.request_id))
    assert "was dead; enqueued it again" in out
    record = stack.wait_state(notice.request_id, "reported")
    assert record.outcome == "Success" and record.generation == 0
    assert "replay" in [entry["event"] for entry in stack.ledger.history(notice.request_id)]
    results = stack.sandbox.results(request_id=notice.request_id)
    assert [(r["status"], r["provisionAttemptId"]) for r in results] == [
        ("Success", notice.attempt_id)
    ]


def test_replay_a_failed_order_is_a_new_generation(stack: Stack) -> None:
    notice = sandbox_notice(stack)
    ledger = stack.ledger
    ledger.accept(notice)
    assert ledger.claim(notice.ref, notice.detail_id, "test-task", 60, 5).action == "claimed"
    ledger.finish(notice.ref, notice.detail_id, "test-task", "Fail", message="made up")
    before = ledger.get(notice.request_id)
    assert before is not None and before.state == "failed"

    out = ok(fulfill(stack, "replay", notice.request_id, "--json"))
    done = json.loads(out)
    assert done["action"] == "new-generation" and done["generation"] == 1
    # The vendor really ran it this time (a new Idempotency-Key): it succeeds.
    record = stack.wait_state(notice.request_id, "reported")
    assert record.generation == 1 and record.outcome == "Success"
    results = stack.sandbox.results(request_id=notice.request_id)
    assert [r["status"] for r in results] == ["Success"]


def test_replay_a_provisioned_order_only_reports_it(stack: Stack) -> None:
    notice = sandbox_notice(stack)
    ledger = stack.ledger
    ledger.accept(notice)
    ledger.claim(notice.ref, notice.detail_id, "test-task", 60, 5)
    ids = {"externalProvisionerSubscriptionId": "sub-replayed"}
    ledger.finish(notice.ref, notice.detail_id, "test-task", "Success", ids)

    out = ok(fulfill(stack, "replay", notice.request_id))
    assert "enqueued the report to Pax8" in out
    stack.wait_state(notice.request_id, "reported")
    results = stack.sandbox.results(request_id=notice.request_id)
    assert len(results) == 1
    assert results[0]["externalProvisionerSubscriptionId"] == "sub-replayed"
    # Not provisioned again: claimed once (by the test), never by the worker.
    assert history_states(stack, notice.request_id).count("provisioning") == 1


def test_replay_a_reported_fail_makes_a_new_pax8_attempt(stack: Stack) -> None:
    entry = simulate_one(stack, "--details", "adminEmail=not-an-email")
    request_id = entry["requestId"]
    assert entry["result"]["outcome"] == "Fail"

    out = ok(fulfill(stack, "replay", request_id))
    assert "created Pax8 attempt" in out
    results = stack.wait_results(2, request_id=request_id)
    attempts = stack.sandbox.request(request_id)["attempts"]
    assert len(attempts) == 2
    assert sorted(r["provisionAttemptId"] for r in results) == sorted(a["id"] for a in attempts)
    record = stack.wait_state(request_id, "reported")
    assert record.generation == 1
    assert [a.status for a in stack.ledger.attempts(request_id)] == ["reported", "reported"]


def test_replay_a_reported_success_needs_force(stack: Stack) -> None:
    entry = simulate_one(stack)
    request_id = entry["requestId"]
    assert entry["result"]["outcome"] == "Success"

    refused = fulfill(stack, "replay", request_id)
    assert refused.returncode == 1
    assert "reported Success already" in refused.stderr and "--force" in refused.stderr
    assert len(stack.sandbox.request(request_id)["attempts"]) == 1

    ok(fulfill(stack, "replay", request_id, "--force"))
    results = stack.wait_results(2, request_id=request_id)
    # The vendor ran the NetNew again under a new key and honestly refused a duplicate.
    assert results[-1]["status"] == "Fail"
    assert "already exists" in results[-1]["errorMessage"]


def test_replay_refuses_an_order_in_flight(stack: Stack) -> None:
    notice = sandbox_notice(stack)
    stack.ledger.accept(notice)  # received: as if the receiver were about to enqueue it
    try:
        result = fulfill(stack, "replay", notice.request_id)
        assert result.returncode == 1
        assert "is in flight (received)" in result.stderr
        record = stack.ledger.get(notice.request_id)
        assert record is not None and record.state == "received"
    finally:
        stack.ledger.mark_dead(notice.ref, "test over")

    unknown = fulfill(stack, "replay", str(uuid.uuid4()))
    assert unknown.returncode == 1
    assert "in the ledger" in unknown.stderr


# -- reconcile -----------------------------------------------------------------------------------


def test_reconcile_enqueues_what_only_pax8_knows(stack: Stack) -> None:
    order = {"provisionRequest": {"type": "NetNew", "companyDomain": unique_domain()}}
    lost = stack.sandbox.bulk(1, "simulation", order)[0]  # its webhook never came
    assert stack.record(lost["id"]) is None

    out = ok(fulfill(stack, "reconcile"))
    enqueued = re.search(r"^\s*(\d+)  enqueued", out, re.MULTILINE)
    assert enqueued and int(enqueued.group(1)) >= 1, out
    assert re.search(r"^\s*\d+  unfulfilled requests listed by Pax8", out, re.MULTILINE)

    record = stack.wait_state(lost["id"], "reported")
    assert record.outcome == "Success"
    results = stack.sandbox.results(request_id=lost["id"])
    assert [r["status"] for r in results] == ["Success"]

    summary = json.loads(ok(fulfill(stack, "reconcile", "--json")))
    assert summary["ran"] is True and summary["errors"] == []
    assert {"seen", "enqueued", "attempts_created", "api_calls"} <= set(summary)


# -- sandbox and webhooks ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, str]]:
    """``fulfill sandbox`` on a free port, with a generated option set."""
    port = free_port()
    proc = Proc(
        "fulfill-sandbox",
        [*fulfill_command(), "sandbox", "--port", str(port), "--token-ttl", "600"],
        env={},
        log_dir=tmp_path_factory.mktemp("cli-sandbox"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{url}/sandbox/health")
        yield proc, url
    finally:
        proc.stop()


def _sandbox_env(url: str) -> dict[str, str]:
    return {
        "PAX8_API_URL": f"{url}/v2",
        "PAX8_TOKEN_URL": f"{url}/v1/token",
        "PAX8_CLIENT_ID": "sandbox-client",
        "PAX8_CLIENT_SECRET": "sandbox-secret",
        "PAX8_SIMULATION_CLIENT_ID": "sandbox-sim-client",
        "PAX8_SIMULATION_CLIENT_SECRET": "sandbox-sim-secret",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # webhooks never need Redis
    }


def test_sandbox_command_takes_the_generated_options(cli_sandbox: tuple[Proc, str]) -> None:
    _, url = cli_sandbox
    config = httpx.get(f"{url}/sandbox/config", timeout=10).json()
    assert config["tokenTtl"] == 600
    assert config["environments"]["simulation"]["clientId"] == "sandbox-sim-client"


def test_sandbox_command_refuses_bad_settings() -> None:
    result = run({}, "sandbox", "--port", str(free_port()), "--webhook-url", "http://x.test/")
    assert result.returncode == 2, result
    assert "--webhook-secret (SANDBOX_WEBHOOK_SECRET) is required" in result.stderr
    assert result.stderr.startswith("fulfillment: configuration error:")
    help_text = ok(run({}, "sandbox", "--help"))
    for option in ("--host", "--port", "--token-ttl", "--retry-delay", "--max-retries",
                   "--simulation-webhook-url", "--access-log / --no-access-log"):  # fmt: skip
        assert option in help_text, option


def test_sandbox_command_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    proc = Proc("one-sandbox", [*fulfill_command(), "sandbox", "--port", str(port)], {}, tmp_path)
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/sandbox/health")
    finally:
        code = proc.stop()
    assert code == 0, proc.log()
    assert not port_open(port)


def test_webhooks_create_shows_the_credential_once_and_list_masks_it(
    cli_sandbox: tuple[Proc, str],
) -> None:
    _, url = cli_sandbox
    env = _sandbox_env(url)
    target = f"http://127.0.0.1:{free_port()}/webhooks/pax8"
    out = ok(run(env, "webhooks", "create", target, "--simulation"))
    credential = re.search(r"Credential: (\S+)", out)
    assert credential, out
    secret = credential.group(1)
    assert out.count(secret) == 1
    assert "PAX8_SIMULATION_WEBHOOK_SECRETS=<current credentials>,<the credential above>" in out
    assert "Rotation:" in out

    listing = ok(run(env, "webhooks", "list", "--simulation"))
    assert secret not in listing
    row = next(line for line in listing.splitlines() if target in line)
    assert f"********{secret[-4:]}" in row and row.rstrip().endswith("yes")

    hooks = json.loads(ok(run(env, "webhooks", "list", "--simulation", "--json")))
    ours = [h for h in hooks if h["url"] == target]
    assert len(ours) == 1 and ours[0]["latest"] is True
    assert ours[0]["sharedSecret"]["credential"] == f"********{secret[-4:]}"

    # Production, another header, as JSON: the setting to use is named.
    created = json.loads(
        ok(run(env, "webhooks", "create", target, "--header", "X-Test-Token", "--json"))
    )
    assert created["environment"] == "production"
    assert created["setting"] == "PAX8_WEBHOOK_SECRETS"
    assert created["sharedSecret"]["header"] == "X-Test-Token"
    assert len(created["sharedSecret"]["credential"]) >= 16
    config = httpx.get(f"{url}/sandbox/config", timeout=10).json()
    production = config["environments"]["production"]["webhooks"]
    assert [w["url"] for w in production] == [target]
