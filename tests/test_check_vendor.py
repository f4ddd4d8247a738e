"""``fulfill check-vendor`` as a user runs it (a subprocess) against vendors on loopback.

Three stubs play the three ways vendors treat ``Idempotency-Key`` (``tests.support.
vendor_stub``): a correct one (the IETF draft: 409 while in progress, 422 for another body),
one that stores keys only when a call finishes, one that ignores them. The checker must pass
the first and name exactly the rules the others break, and its claims are cross-checked
with what the stubs really did. The ``example`` vendor behind its HTTP bridge passes too.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cli.redis_server import RedisServer, free_port
from tests.support.example_bridge import ExampleBridge
from tests.support.procs import ROOT
from tests.support.vendor_stub import Keys, Script, VendorStub
from tests.test_cli import run

TOKEN = "check-vendor-secret-token"
RULES = [
    "every order type is answered",
    "the same key twice: same outcome, one provisioning",
    "two concurrent calls with one key: not both provisioned",
    "a key reused with another body: 422, not provisioned again",
    "a 4xx carries a message a partner can act on",
    "answers come within the timeout",
    "a call without the token is refused",
]


def check(url: str, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    extra = ("--token", token) if token else ()
    # This tree's code, whichever tree the installed ``fulfill`` script was installed from.
    env = {"PYTHONPATH": str(ROOT)}
    return run(env, "check-vendor", url, *extra, *args, drop=("VENDOR_HTTP_TOKEN",), timeout=120)


def rows(output: str) -> dict[str, tuple[str, str]]:
    """rule → (result, seen) from the printed table."""
    found = {}
    for line in output.splitlines():
        for rule in RULES:
            if line.startswith(rule):
                result, _, seen = line[len(rule) :].strip().partition("  ")
                found[rule] = (result, seen.strip())
    return found


def stub(keys: Keys) -> VendorStub:
    # Work takes a moment, as at a real vendor, so two calls at once really overlap.
    return VendorStub(token=TOKEN, keys=keys, work=0.3)


def test_a_correct_vendor_passes_every_rule() -> None:
    with stub(Keys.AT_START) as vendor:
        result = check(vendor.url, "--timeout", "5")
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    table = rows(result.stdout)
    assert list(table) == RULES and {r for r, _ in table.values()} == {"pass"}
    assert table[RULES[2]][1].startswith("409 to the second, then the first answer")
    assert table[RULES[3]][1] == "422"
    assert "7 of 7 rules pass" in result.stdout
    assert TOKEN not in result.stdout + result.stderr
    # Every order it sent was a simulation with ids of its own.
    assert {c.order["isSimulation"] for c in vendor.calls} == {True}
    request_ids = [c.order["provisionRequest"]["id"] for c in vendor.calls]
    assert len(set(request_ids)) >= 10


def test_a_vendor_that_stores_keys_on_completion_fails_the_concurrent_rule() -> None:
    with stub(Keys.ON_COMPLETION) as vendor:
        result = check(vendor.url, "--timeout", "5")
        done_per_key: dict[str, int] = {}
        for entry in vendor.provisionings():
            done_per_key[entry["key"]] = done_per_key.get(entry["key"], 0) + 1
    print(result.stdout)
    assert result.returncode == 1
    table = rows(result.stdout)
    failed = [rule for rule, (outcome, _) in table.items() if outcome == "FAIL"]
    assert failed == [RULES[2]]
    assert table[RULES[2]][1].startswith("both provisioned")
    assert sorted(done_per_key.values())[-1] == 2  # the stub did do one key's work twice


def test_a_vendor_that_ignores_keys_fails_every_key_rule() -> None:
    with stub(Keys.IGNORED) as vendor:
        result = check(vendor.url, "--timeout", "5")
    print(result.stdout)
    assert result.returncode == 1
    table = rows(result.stdout)
    failed = [rule for rule, (outcome, _) in table.items() if outcome == "FAIL"]
    assert failed == RULES[1:4]
    assert table[RULES[1]][1].startswith("provisioned twice")
    assert "6 of 7" not in result.stdout and "4 of 7 rules pass" in result.stdout


@pytest.fixture
def example_bridge(tmp_path: Path) -> Iterator[ExampleBridge]:
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    bridge = ExampleBridge(client, token=TOKEN)
    yield bridge
    bridge.close()
    client.close()
    server.stop()


def test_the_example_vendor_behind_its_bridge_passes(example_bridge: ExampleBridge) -> None:
    result = check(example_bridge.url)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    table = rows(result.stdout)
    assert {r for r, _ in table.values()} == {"pass"}
    # It replays a reused key's first answer rather than answering 422: allowed, and said.
    assert "the first answer again" in table[RULES[3]][1]


def test_late_answers_and_hostile_messages_are_reported_not_obeyed() -> None:
    hostile = "Seats exceed the plan.\x1b[2J\nFAKE pass  all good"
    with stub(Keys.AT_START) as vendor:
        vendor.then(
            Script(),  # NetNew
            Script(status=400, body={"message": hostile}),  # Update
            Script(delay_before=3),  # ChangeProduct answers after the 1 s deadline
        )
        result = check(vendor.url, "--timeout", "1")
    print(result.stdout)
    assert result.returncode == 1
    table = rows(result.stdout)
    assert table[RULES[0]][0] == "FAIL" and "ChangeProduct no complete answer" in table[RULES[0]][1]
    assert table[RULES[5]][0] == "FAIL" and "ChangeProduct" in table[RULES[5]][1]
    # The vendor's text is shown escaped: no escape sequence, no forged line.
    assert "\x1b" not in result.stdout and "\\x1b[2J" in result.stdout
    assert not any(line.startswith("FAKE") for line in result.stdout.splitlines())


def test_an_endpoint_that_does_not_answer_is_exit_3_and_a_bad_url_exit_2() -> None:
    url = f"http://127.0.0.1:{free_port()}/orders"
    result = check(url, "--timeout", "2")
    assert result.returncode == 3 and url in result.stderr and TOKEN not in result.stderr
    assert re.search(r"does not answer: the first order got no answer", result.stderr)
    bad = check("ftp://vendor.example/orders")
    assert bad.returncode == 2 and "URL: must be an http:// or https:// URL" in bad.stderr
