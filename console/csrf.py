"""CSRF protection of the console's forms: a random token in the (signed, SameSite=Strict)
session cookie, repeated in every form, compared in constant time on every POST."""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

FIELD = "csrf_token"


def token() -> str:
    """This browser's token (made on first use)."""
    value = session.get(FIELD)
    if not isinstance(value, str):
        value = session[FIELD] = secrets.token_urlsafe(32)
    return value


def check() -> None:
    """Abort with 400 unless the POSTed token is this browser's."""
    expected = session.get(FIELD)
    presented = request.form.get(FIELD, "")
    if not isinstance(expected, str) or not hmac.compare_digest(
        presented.encode(), expected.encode()
    ):
        abort(400, description="This form has expired or did not come from the console: reload.")
