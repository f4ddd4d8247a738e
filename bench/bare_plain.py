"""The barest receiver: gunicorn + Flask, a route that reads the body and answers 200.

Served as ``bench.bare_plain:app`` by the Procfile ``web`` line; it imports nothing but
Flask, so it is the floor for both throughput and memory.
"""

from __future__ import annotations

from flask import Flask, request

app = Flask("bench-plain")


@app.post("/webhooks/pax8")
def webhook() -> tuple[str, int]:
    """Read the body, answer 200."""
    request.get_data()
    return "", 200


@app.get("/healthz")
def healthz() -> tuple[str, int]:
    """Liveness, for the start-up wait."""
    return "ok", 200
