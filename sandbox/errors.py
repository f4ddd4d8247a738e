"""One error type and one JSON error shape for every answer the sandbox gives.

Every error, from the Pax8 API and the control plane alike, is ``{"message": str,
"status": int}`` plus an optional ``"details"`` object (``details.field`` names the offending
field of a 400). Views raise :class:`ApiError`; :func:`register_error_handlers` turns it, and
werkzeug's own HTTP errors (unknown route, wrong method), into that JSON.
"""

import json
import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than success: HTTP status, a message, optional details and headers."""

    def __init__(
        self,
        status: int,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, details, headers)
        self.status = status
        self.message = message
        self.details = dict(details) if details else None
        self.headers = dict(headers) if headers else {}


def invalid(field: str, message: str) -> ApiError:
    """A 400 naming ``field`` in the message and in ``details.field``."""
    return ApiError(400, f"{field}: {message}", {"field": field})


def not_found(what: str, ident: str) -> ApiError:
    """A 404 for an id that does not exist (or is not visible to this environment)."""
    return ApiError(404, f"{what} {ident} not found")


def error_response(
    status: int,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The JSON error response every failure uses."""
    body: dict[str, Any] = {"message": message, "status": status}
    if details:
        body["details"] = dict(details)
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    """Answer every error of ``app`` with the JSON error shape."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, exc.details, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        # Keep Allow (405) and the like; drop werkzeug's HTML Content-Type.
        headers = {n: v for n, v in exc.get_headers() if n.lower() != "content-type"}
        return error_response(status, exc.description or exc.name, None, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, f"internal sandbox error: {type(exc).__name__}")


def read_json(*, required: bool) -> Any:
    """The request body parsed as JSON, whatever the Content-Type says.

    An empty body is ``None`` when the body is optional and a 400 when it is required; a body
    that is not JSON is always a 400.
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise ApiError(400, "a JSON request body is required")
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not valid JSON") from None


def read_object(*, required: bool, name: str = "body") -> dict[str, Any]:
    """The request body as a JSON object (``{}`` when optional and absent)."""
    body = read_json(required=required)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise invalid(name, "must be a JSON object")
    return body
