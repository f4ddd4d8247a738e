"""Settings of one sandbox process.

``SandboxConfig`` is the only input of :func:`sandbox.app.create_app` and
:func:`sandbox.server.serve`. Each field carries its command-line help in its metadata, and
its option and environment names follow from the field name (``token_ttl`` is
``--token-ttl`` and ``SANDBOX_TOKEN_TTL``), so any command line (``python -m sandbox``,
``fulfill sandbox``) can be generated from the fields instead of restating them.
"""

import re
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

ENVIRONMENTS = ("production", "simulation")
"""The two Pax8 worlds: each has its own credentials, provisioner, webhooks and data."""

ENV_PREFIX = "SANDBOX_"

# RFC 9110 token characters: the webhook header name is sent as an HTTP header.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HOST_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")


class ConfigError(ValueError):
    """A setting has a value the sandbox cannot run with (the message names the option)."""


def _opt(help_text: str) -> dict[str, Any]:
    return {"help": help_text}


@dataclass(frozen=True)
class SandboxConfig:
    """Everything one sandbox process needs: where to listen, credentials, delivery rules."""

    host: str = field(default="127.0.0.1", metadata=_opt("address to listen on"))
    port: int = field(default=8080, metadata=_opt("TCP port to listen on (0: any free port)"))
    client_id: str = field(default="sandbox-client", metadata=_opt("production client id"))
    client_secret: str = field(default="sandbox-secret", metadata=_opt("production client secret"))
    simulation_client_id: str = field(
        default="sandbox-sim-client", metadata=_opt("simulation client id")
    )
    simulation_client_secret: str = field(
        default="sandbox-sim-secret", metadata=_opt("simulation client secret")
    )
    token_ttl: int = field(default=86400, metadata=_opt("access token lifetime in seconds"))
    retry_delay: float = field(
        default=2.0, metadata=_opt("seconds between Pax8 redelivery attempts (production)")
    )
    delivery_timeout: float = field(
        default=10.0, metadata=_opt("seconds Pax8 waits for the vendor's webhook answer")
    )
    max_retries: int = field(
        default=3, metadata=_opt("redeliveries (new attempts) after a failed production delivery")
    )
    delivery_workers: int = field(
        default=16, metadata=_opt("threads delivering production webhooks in the background")
    )
    webhook_url: str | None = field(
        default=None, metadata=_opt("preset production webhook URL (created at start)")
    )
    webhook_secret: str | None = field(
        default=None, metadata=_opt("credential of the preset production webhook")
    )
    simulation_webhook_url: str | None = field(
        default=None, metadata=_opt("preset simulation webhook URL (created at start)")
    )
    simulation_webhook_secret: str | None = field(
        default=None, metadata=_opt("credential of the preset simulation webhook")
    )
    webhook_header: str = field(
        default="pax8ApiTokenV1", metadata=_opt("header name of the preset webhooks")
    )
    access_log: bool = field(default=False, metadata=_opt("log every HTTP request"))
    keep_alive: bool = field(
        default=True,
        metadata=_opt(
            "keep connections open between requests, as Pax8 does (waitress); "
            "--no-keep-alive: answer every request with 'Connection: close' (werkzeug's "
            "server, as the sandbox did before)"
        ),
    )
    allowed_hosts: str = field(
        default="",
        metadata=_opt(
            "host names (comma-separated) the sandbox answers besides localhost and IP "
            "addresses, e.g. 'sandbox' on a compose network; any other Host is refused (DNS "
            "rebinding)"
        ),
    )
    usage_rate_limit: int = field(
        default=1000, metadata=_opt("Usage API: posts allowed per --usage-rate-window (then 429)")
    )
    usage_rate_window: float = field(
        default=60.0, metadata=_opt("Usage API: seconds of the rate limit's window")
    )
    clock_file: str | None = field(
        default=None,
        metadata=_opt("Usage API: read 'now' (ISO 8601) from this file instead of the clock"),
    )

    def __post_init__(self) -> None:
        _check(0 <= self.port <= 65535, "port", f"must be between 0 and 65535, got {self.port}")
        _check(bool(self.host), "host", "must not be empty")
        for name in ("client_id", "client_secret", "simulation_client_id"):
            _check(bool(getattr(self, name)), name, "must not be empty")
        _check(bool(self.simulation_client_secret), "simulation_client_secret", "must not be empty")
        _check(
            self.client_id != self.simulation_client_id,
            "simulation_client_id",
            "must differ from --client-id (the client id picks the environment)",
        )
        _check(self.token_ttl > 0, "token_ttl", f"must be positive, got {self.token_ttl}")
        _check(self.retry_delay >= 0, "retry_delay", f"must be >= 0, got {self.retry_delay}")
        _check(
            self.delivery_timeout > 0,
            "delivery_timeout",
            f"must be positive, got {self.delivery_timeout}",
        )
        _check(self.usage_rate_limit >= 1, "usage_rate_limit", "must be at least 1")
        _check(self.usage_rate_window > 0, "usage_rate_window", "must be positive")
        _check(self.max_retries >= 0, "max_retries", f"must be >= 0, got {self.max_retries}")
        _check(
            1 <= self.delivery_workers <= 256,
            "delivery_workers",
            f"must be between 1 and 256, got {self.delivery_workers}",
        )
        _check(
            bool(_HEADER_NAME.match(self.webhook_header)),
            "webhook_header",
            f"is not a valid HTTP header name: {self.webhook_header!r}",
        )
        for name in self.host_names:
            _check(
                bool(_HOST_NAME.fullmatch(name)),
                "allowed_hosts",
                "must be host names (letters, digits, '.', '-'), comma-separated",
            )
        for url_name, secret_name in (
            ("webhook_url", "webhook_secret"),
            ("simulation_webhook_url", "simulation_webhook_secret"),
        ):
            url, secret = getattr(self, url_name), getattr(self, secret_name)
            if url is not None:
                _check(is_http_url(url), url_name, f"must be an http(s) URL, got {url!r}")
                _check(bool(secret), secret_name, f"is required with {option_name(url_name)}")
            else:
                _check(secret is None, url_name, f"is required with {option_name(secret_name)}")

    @property
    def host_names(self) -> frozenset[str]:
        """The names of :attr:`allowed_hosts`, lower-cased."""
        return frozenset(
            name.strip().lower() for name in self.allowed_hosts.split(",") if name.strip()
        )

    def credentials(self, environment: str) -> tuple[str, str]:
        """The (client id, client secret) pair of ``environment``."""
        if environment == "simulation":
            return self.simulation_client_id, self.simulation_client_secret
        return self.client_id, self.client_secret

    def preset_webhook(self, environment: str) -> tuple[str, str] | None:
        """The (url, credential) of the webhook created at start in ``environment``, if any."""
        if environment == "simulation":
            url, secret = self.simulation_webhook_url, self.simulation_webhook_secret
        else:
            url, secret = self.webhook_url, self.webhook_secret
        if url is None or secret is None:
            return None
        return url, secret


def option_name(field_name: str) -> str:
    """The command-line option of a field: ``token_ttl`` -> ``--token-ttl``."""
    return "--" + field_name.replace("_", "-")


def env_name(field_name: str) -> str:
    """The environment variable of a field: ``token_ttl`` -> ``SANDBOX_TOKEN_TTL``."""
    return ENV_PREFIX + field_name.upper()


def field_names() -> list[str]:
    """The names of every setting, in declaration order."""
    return [f.name for f in fields(SandboxConfig)]


def is_http_url(value: str) -> bool:
    """Whether ``value`` is an absolute http or https URL with a host."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def is_header_name(value: str) -> bool:
    """Whether ``value`` can be sent as an HTTP header name."""
    return bool(_HEADER_NAME.match(value))


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{option_name(name)} ({env_name(name)}) {message}")
