"""The sandbox answers as Pax8's OpenAPI document says: schemathesis against a real process.

schemathesis runs as a subprocess (its own process, so its warnings and hypothesis state stay
out of this one), positive data only, a fixed seed and deterministic generation, bounded by
``--max-examples``. Checks: no 5xx, and every documented response matches its schema.

Path ids are pinned to data seeded before the run (``[parameters]`` in a schemathesis config
file), so reads answer 200 with real objects instead of 404s; a last run leaves them free to
cover unknown ids. Seeded details and metadata hold objects only, because the OpenAPI types
every value of ``details`` and ``metadata`` as an object (Pax8's prose examples use strings).

Webhook deliveries happen in simulation only (order-events), and the simulation run does not
create webhook configurations: every notification goes to the loopback listener.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import ROOT
from tests.support.sandbox import SandboxHandle, WebhookListener, start_sandbox

SCHEMA = ROOT / "sandbox" / "openapi" / "pax8-provisioning-openapi.json"
SEED_SCHEMA = ROOT.parent / "shared" / "seeds" / "pax8-provisioning-openapi.json"
CHECKS = "not_a_server_error,response_schema_conformance"
# sha256 of the seed (Pax8's provisioning OpenAPI document), the document the copy was taken from.
SEED_SHA256 = "df17bd1ddfa8c307f24a908283ce95a0c397f418452044d875f74e9f7dde324a"


@pytest.fixture(scope="module")
def listener() -> Iterator[WebhookListener]:
    with WebhookListener() as server:
        yield server


@pytest.fixture(scope="module")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory, listener: WebhookListener
) -> Iterator[SandboxHandle]:
    handle = start_sandbox(
        tmp_path_factory.mktemp("conformance"),
        webhook_url=listener.url,
        webhook_secret="conformance-production",
        simulation_webhook_url=listener.url,
        simulation_webhook_secret="conformance-simulation",
        max_retries=0,
        delivery_timeout=2.0,
    )
    yield handle
    handle.stop()


def seed(sandbox: SandboxHandle, simulation: bool) -> dict[str, str]:
    """One acknowledged order with a result; the ids schemathesis should use."""
    env = "simulation" if simulation else "production"
    order = {"provisionDetail": {"details": {"seats": {"count": 5}}}}
    event = sandbox.order(environment=env, order=order, wait=True)
    assert event["provisionAttempt"]["status"] == "Acknowledged", event
    request_id = event["provisionRequest"]["id"]
    api = sandbox.api(simulation=simulation)
    result = api.post(
        f"/provision-requests/{request_id}/results",
        json={
            "status": "Success",
            "provisionAttemptId": event["provisionAttempt"]["id"],
            "externalProvisionerSubscriptionId": "vendor-sub-1",
            "metadata": {"plan": {"tier": "gold"}},
        },
    )
    assert result.status_code == 200, result.text
    (webhook,) = sandbox.config()["environments"][env]["webhooks"]
    return {
        "provisionerId": sandbox.provisioner_id(simulation),
        "webhookId": webhook["id"],
        "provisionRequestId": request_id,
        "provisionDetailId": event["provisionDetail"]["id"],
        "provisionAttemptId": event["provisionAttempt"]["id"],
        "provisionResultId": result.json()["id"],
    }


def run_schemathesis(
    tmp_path: Path,
    sandbox: SandboxHandle,
    simulation: bool,
    pinned: dict[str, str] | None,
    *extra: str,
    max_examples: int = 10,
) -> None:
    lines = ["[parameters]"] + [f'"path.{k}" = {json.dumps(v)}' for k, v in (pinned or {}).items()]
    config = tmp_path / "schemathesis.toml"
    config.write_text("\n".join(lines) + "\n")
    argv = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
        "run", str(SCHEMA),
        "--url", sandbox.api_url,
        "-H", f"Authorization: Bearer {sandbox.token(simulation)}",
        "--checks", CHECKS,
        "--mode", "positive",
        "--max-examples", str(max_examples),
        "--seed", "20240408",
        "--generation-deterministic",
        "--request-timeout", "10",
        *extra,
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    output = done.stdout[-12_000:] + done.stderr[-4_000:]
    assert done.returncode == 0, output  # schemathesis exits 1 on any failed check
    assert " passed" in output, output


def test_openapi_copy_is_the_seed() -> None:
    """The vendored copy is the seed document, byte for byte.

    The seed lives outside the repository, so a clean clone checks the copy against the
    seed's recorded digest; where the seed is found beside the checkout (``SEED_SCHEMA``), it
    compares the two as well.
    """
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SEED_SHA256
    if SEED_SCHEMA.exists():
        assert json.loads(SCHEMA.read_text()) == json.loads(SEED_SCHEMA.read_text())


def test_simulation_conforms(
    tmp_path: Path, sandbox: SandboxHandle, listener: WebhookListener
) -> None:
    pinned = seed(sandbox, simulation=True)
    before = len(listener.received)
    # No webhook creation here: a generated URL would become the newest configuration and
    # order events would be delivered to it.
    run_schemathesis(
        tmp_path,
        sandbox,
        True,
        pinned,
        "--phases",
        "coverage,fuzzing,stateful",
        "--exclude-operation-id",
        "createWebhookForProvisioner",
    )
    made = sandbox.calls()["by_operation"].get("POST /v2/provision-simulations/order-events", 0)
    assert made > 1, "schemathesis made no order events"
    assert len(listener.received) > before
    assert {d["url"] for d in sandbox.deliveries()} == {listener.url}
    assert all(b["isSimulation"] is True for b in listener.bodies()[before:])


def test_production_conforms(tmp_path: Path, sandbox: SandboxHandle) -> None:
    pinned = seed(sandbox, simulation=False)
    run_schemathesis(tmp_path, sandbox, False, pinned, "--phases", "coverage,fuzzing,stateful")
    results = sandbox.results(environment="production", request_id=pinned["provisionRequestId"])
    assert results, "the seeded result is gone"


def test_unknown_ids_conform(tmp_path: Path, sandbox: SandboxHandle) -> None:
    run_schemathesis(tmp_path, sandbox, False, None, "--phases", "fuzzing", max_examples=10)
