"""Settings: parsing, cross-checks, and every process stopping at start on a bad setting.

The process tests start the real Procfile lines (gunicorn, celery worker, beat, flower)
with one setting wrong and expect a quick exit with one line naming the variable.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from config.settings import ConfigError, Settings, build_settings
from tests.support.procs import Proc, procfile_command

BASE = {
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "PAX8_CLIENT_ID": "id",
    "PAX8_CLIENT_SECRET": "base-client-secret",
    "PAX8_WEBHOOK_SECRETS": "base-webhook-secret-one",
}


def documented_default(variable: str) -> str:
    """The default the settings contract (``docs/architecture.md#settings``) promises for
    ``variable``, written there as ``VARIABLE`` ``value`` (the configuration page is made from
    the code, so it cannot be the yardstick)."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()
    contract = page.split("\n### Settings\n", 1)[1].split("\n### ", 1)[0]
    found = re.search(rf"`{variable}`\s+`([^`]+)`", contract)
    if found is None:
        raise AssertionError(f"{variable} has no default in docs/architecture.md#settings")
    return found.group(1)


def test_defaults_match_the_design() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.redis_url == "redis://localhost:6379/0"
    # The production Pax8 URLs are not spelled out here (tests never name a host outside
    # loopback): they must be the ones the docs promise.
    assert settings.pax8_api_url == documented_default("PAX8_API_URL")
    assert settings.pax8_token_url == documented_default("PAX8_TOKEN_URL")
    assert settings.pax8_api_url.startswith("https://")
    assert settings.pax8_token_url.startswith("https://")
    assert settings.pax8_webhook_header == "pax8ApiTokenV1"
    assert settings.vendor_adapter == "example"
    assert settings.simulation_adapter == "example"
    assert settings.reconcile_interval_seconds == 300
    assert settings.port == 8000
    assert settings.sentry_dsn is None
    assert settings.cloudblue_response_timeout_seconds == 25
    assert documented_default("CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS") == "25"


def test_secret_lists_split_on_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAX8_WEBHOOK_SECRETS", " old-webhook-secret , new-webhook-secret ,")
    settings = build_settings()
    assert [s.get_secret_value() for s in settings.pax8_webhook_secrets] == [
        "old-webhook-secret",
        "new-webhook-secret",
    ]
    assert "old-webhook-secret" not in repr(settings)  # secrets never show in logs or tracebacks


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"REDIS_URL": "unix:///run/redis.sock"}, "REDIS_URL"),
        ({"PAX8_API_URL": "127.0.0.1:8080/v2"}, "PAX8_API_URL"),
        ({"PORT": "eighty"}, "PORT"),
        ({"RECONCILE_INTERVAL_SECONDS": "-1"}, "RECONCILE_INTERVAL_SECONDS"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"PAX8_CLIENT_ID": "only-the-id"}, "PAX8_CLIENT_SECRET"),
        ({"PAX8_SIMULATION_CLIENT_SECRET": "only-secret"}, "PAX8_SIMULATION_CLIENT_ID"),
        ({"TASK_SOFT_TIME_LIMIT_SECONDS": "200"}, "TASK_SOFT_TIME_LIMIT_SECONDS"),
        ({"VISIBILITY_TIMEOUT_SECONDS": "60"}, "VISIBILITY_TIMEOUT_SECONDS"),
        ({"CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS": "0"}, "CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS"),
        ({"CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS": "soon"}, "CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS"),
    ],
)
def test_malformed_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    for key in ("PAX8_CLIENT_ID", "PAX8_CLIENT_SECRET"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        build_settings()
    assert caught.value.variable == variable


WEAK = [
    ("PAX8_WEBHOOK_SECRETS", "abc"),
    ("PAX8_WEBHOOK_SECRETS", "a-long-enough-secret-1,short-2"),
    ("PAX8_SIMULATION_WEBHOOK_SECRETS", "s"),
    ("CLOUDBLUE_WEBHOOK_SECRETS", "fifteen-chars-x"),
    ("METRICS_TOKEN", "t0ken"),
    ("PAX8_CLIENT_SECRET", "sEcr3t"),
    ("PAX8_SIMULATION_CLIENT_SECRET", "x"),
    ("VENDOR_HTTP_TOKEN", "tok"),
    ("CONSOLE_USERS", "ops:pbkdf2:sha256:1$salt$" + "ab" * 32),
    ("CONSOLE_USERS", "ops:pbkdf2:sha256:599999$salt$" + "ab" * 32),
    ("CONSOLE_USERS", "ops:pbkdf2:sha1:1000000$salt$" + "ab" * 32),
    ("CONSOLE_USERS", "ops:pbkdf2:md5:1000000$salt$" + "ab" * 32),
    ("CONSOLE_USERS", "ops:scrypt:16384:8:1$salt$" + "ab" * 32),
    ("CONSOLE_USERS", "ops:scrypt:2:1:1$salt$" + "ab" * 32),
]


@pytest.mark.parametrize(("variable", "value"), WEAK)
def test_weak_secrets_are_refused_naming_the_setting_never_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    if variable == "PAX8_SIMULATION_CLIENT_SECRET":
        monkeypatch.setenv("PAX8_SIMULATION_CLIENT_ID", "sim-id")
    with pytest.raises(ConfigError) as caught:
        build_settings()
    assert caught.value.variable == variable
    said = str(caught.value)
    for part in value.split(","):  # no secret, no hash, in the one line
        shown = [part, part.split("$")[-1]] if len(part) >= 4 else []
        assert not [text for text in shown if text in said], said


def test_the_secrets_fulfill_makes_or_werkzeug_hashes_by_default_pass() -> None:
    import secrets as random

    from werkzeug.security import generate_password_hash

    build_settings(
        pax8_webhook_secrets=random.token_urlsafe(24),  # what fulfill dev makes
        metrics_token=random.token_hex(16),
        pax8_client_id="sandbox-client",
        pax8_client_secret="sandbox-secret",
        console_users=",".join(
            [
                f"a:{generate_password_hash('pw')}",  # fulfill console-user: scrypt's default
                f"b:{generate_password_hash('pw', method='pbkdf2')}",
                f"c:{generate_password_hash('pw', method='pbkdf2:sha512:210000')}",
                f"d:{generate_password_hash('pw', method='scrypt:131072:8:1')}",
            ]
        ),
    )


def test_role_requirements() -> None:
    bare = build_settings()
    with pytest.raises(ConfigError, match="PAX8_WEBHOOK_SECRETS"):
        bare.require("receiver")
    with pytest.raises(ConfigError, match="PAX8_CLIENT_ID"):
        bare.require("worker")
    http = build_settings(
        vendor_adapter="http", pax8_client_id="a", pax8_client_secret="client-secret-b"
    )
    with pytest.raises(ConfigError, match="VENDOR_HTTP_URL"):
        http.require("worker")
    build_settings(pax8_simulation_webhook_secrets="simulation-secret-s").require("receiver")


@pytest.mark.parametrize(
    ("line", "env", "variable"),
    [
        ("web", {"PAX8_WEBHOOK_SECRETS": ""}, "PAX8_WEBHOOK_SECRETS"),
        ("web", {"REDIS_URL": "nope"}, "REDIS_URL"),
        ("web", {"CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS": "-1"}, "CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS"),
        ("worker", {"PAX8_CLIENT_ID": "", "PAX8_CLIENT_SECRET": ""}, "PAX8_CLIENT_ID"),
        ("worker", {"VENDOR_ADAPTER": "acme.vendor:Missing"}, "VENDOR_ADAPTER"),
        ("worker", {"VENDOR_ADAPTER": "http"}, "VENDOR_HTTP_URL"),
        ("worker", {"VISIBILITY_TIMEOUT_SECONDS": "30"}, "VISIBILITY_TIMEOUT_SECONDS"),
        ("beat", {"RECONCILE_INTERVAL_SECONDS": "often"}, "RECONCILE_INTERVAL_SECONDS"),
        ("flower", {"REDIS_URL": "http://x"}, "REDIS_URL"),
        ("web", {"PAX8_WEBHOOK_SECRETS": "short-secret"}, "PAX8_WEBHOOK_SECRETS"),
        ("worker", {"VENDOR_HTTP_TOKEN": "tok"}, "VENDOR_HTTP_TOKEN"),
        ("console", {"CONSOLE_USERS": "ops:pbkdf2:sha256:1$s$" + "ab" * 32}, "CONSOLE_USERS"),
    ],
)
def test_each_process_stops_at_start_naming_the_setting(
    tmp_path: Path, line: str, env: dict[str, str], variable: str
) -> None:
    environment = {**BASE, "PORT": "18999", "BEAT_SCHEDULE_FILE": str(tmp_path / "s"), **env}
    proc = Proc(line, procfile_command(line), environment, tmp_path)
    try:
        code = proc.popen.wait(60)
    except subprocess.TimeoutExpired:
        proc.stop()
        pytest.fail(f"{line} kept running with a bad {variable}\n{proc.describe()}")
    finally:
        proc.stop()
    assert code != 0
    errors = [x for x in proc.log().splitlines() if "configuration error" in x]
    assert len(errors) == 1, proc.log()
    assert errors[0].startswith(f"fulfillment: configuration error: {variable}: ")
