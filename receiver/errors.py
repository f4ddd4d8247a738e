"""One exception class and one handler: every error answer is JSON."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """An error answer: status, message, and the field at fault when there is one."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, field, headers)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        data: dict[str, Any] = {"error": self.message, "status": self.status}
        if self.field:
            data["field"] = self.field
        return data


def register_error_handlers(app: Flask) -> None:
    """Answer ApiError and werkzeug's HTTP errors (404, 405, 413…) as JSON."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> ResponseReturnValue:
        return jsonify(error.body()), error.status, error.headers

    @app.errorhandler(500)
    def _internal_error(error: Exception) -> ResponseReturnValue:
        # Registered for the code, not for Exception: Flask signals the exception (which
        # Sentry's integration reports) before it looks this handler up.
        return jsonify({"error": "internal error", "status": 500}), 500

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> ResponseReturnValue:
        status = error.code or 500
        message = error.description or error.name
        if status == 413:
            message = "body too large (the limit is 256 KiB)"
        return jsonify({"error": message, "status": status}), status
