"""Scrubbing and escaping: what may be written down of a value from outside or a secret."""

from __future__ import annotations

import io
import json
import logging

from config.logging import JsonFormatter, TextFormatter, escape_controls
from config.scrub import FILTERED, Scrubber, ScrubbingFilter, mask_url, secret_values
from config.settings import explicit_settings


def settings_with_secrets() -> object:
    return explicit_settings(
        redis_url="redis://:Redis-Pass-123@127.0.0.1:6390/0",
        pax8_client_id="id",
        pax8_client_secret="Client-Secret-abc",
        pax8_webhook_secrets="Hook-One-1111-aaaa,Hook-Two-2222-bbbb",
        vendor_http_token="Vendor-Token-999",
        pax8_webhook_header="X-Vendor-Chosen",
    )


def test_every_secret_of_the_settings_is_known_by_value() -> None:
    values = secret_values(settings_with_secrets())  # type: ignore[arg-type]
    for secret in ("Redis-Pass-123", "Client-Secret-abc", "Hook-One-1111-aaaa",
                   "Hook-Two-2222-bbbb", "Vendor-Token-999"):  # fmt: skip
        assert secret in values
    assert "id" not in values  # an id is not a secret (and too short to scrub)


def test_events_lose_secrets_in_any_case_under_any_key_and_after_bearer() -> None:
    scrubber = Scrubber.from_settings(settings_with_secrets())  # type: ignore[arg-type]
    event = {
        "request": {
            "headers": [["X-Vendor-Chosen", "anything"], ["Accept", "json"]],
            "url": "redis://:Redis-Pass-123@host/0",
        },
        "extra": {"note": "sent HOOK-ONE-1111-AAAA and vendor-token-999", "token": "opaque"},
        "breadcrumbs": [{"message": "Authorization: Bearer eyJhbGciOi.J9x"}],
        "deep": [[[[{"x": "Client-Secret-abc"}]]]],
    }
    text = json.dumps(scrubber.before_send(event, {}))
    for secret in ("anything", "Redis-Pass-123", "hook-one-1111-aaaa", "vendor-token-999",
                   "opaque", "eyJhbGciOi", "Client-Secret-abc"):  # fmt: skip
        assert secret.lower() not in text.lower(), secret
    assert FILTERED in text and '"Accept", "json"' in text  # the rest is kept


def test_log_records_are_scrubbed_at_every_level_and_text_lines_cannot_be_forged() -> None:
    scrubber = Scrubber.from_settings(settings_with_secrets())  # type: ignore[arg-type]
    for formatter in (TextFormatter(), JsonFormatter()):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(ScrubbingFilter(scrubber))
        log = logging.getLogger(f"scrub-test-{type(formatter).__name__}")
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
        log.propagate = False
        log.debug("token %s", "Vendor-Token-999")
        log.info("id=r1\nlevel=ERROR forged \x1b[31mred")
        try:
            raise RuntimeError("failed with Client-Secret-abc")
        except RuntimeError:
            log.exception("boom")
        out = stream.getvalue()
        assert "Vendor-Token-999" not in out and "Client-Secret-abc" not in out
        assert "\x1b" not in out
        lines = out.splitlines()
        assert not any(line.startswith("level=ERROR") for line in lines)


def test_urls_are_printed_without_their_password() -> None:
    assert mask_url("redis://:pw@127.0.0.1:6379/0") == "redis://:****@127.0.0.1:6379/0"
    assert mask_url("rediss://user:pw@h:1/2") == "rediss://user:****@h:1/2"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert "s3cret" not in Scrubber([]).text("connecting to redis://:s3cret@10.0.0.1:6379")


def test_control_characters_are_shown_not_sent() -> None:
    assert escape_controls("a\nb\x1b[2J\x00\u202e") == "a\\nb\\x1b[2J\\x00\\u202e"
    assert escape_controls("plain text, é") == "plain text, é"


def test_the_fast_path_scrubs_exactly_what_the_full_scan_does() -> None:
    """text() skips a pattern only where it cannot match: the same result as running them
    all, for ASCII and other text, secrets in any case, tokens and URL passwords."""
    lines = [
        "request_id=6e955e32 state=provisioned event=vendor-ok",
        "vendor said: S3CRET-value-42 is wrong",
        "vendor said: s3cret-VALUE-42 is wrong (über)",
        "Authorization: Bearer abc.def-123 and BASIC dXNlcjpwYXNz",
        "redis://user:hunter2hunter2@redis:6379/0",
        "ftp://host/path with an @ but no password",
        "ünïcode: naïve-sécret-Ω and S3CRET-VALUE-42",
        "",
    ]
    for secrets in (["s3cret-value-42", "another-one"], ["naïve-sécret-ω", "s3cret-value-42"], []):
        scrubber = Scrubber(secrets)
        for line in lines:
            full = scrubber._scan(line, secrets=True, bearer=True, url=True)
            assert scrubber.text(line) == full, (secrets, line)
    scrubber = Scrubber(["s3cret-value-42"])
    assert scrubber.text("x S3CRET-Value-42 y") == f"x {FILTERED} y"
    assert "abc.def-123" not in scrubber.text("Authorization: Bearer abc.def-123")
    assert "hunter2" not in scrubber.text("redis://u:hunter2hunter2@h:1/0")
