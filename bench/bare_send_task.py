"""A bare receiver that hands work to Celery: parse the body, one ``send_task``, answer 202.

Served as ``bench.bare_send_task:app`` by the Procfile ``web`` line. It sends
``bench.post_result(request id, attempt id)`` on the same Redis: the least a receiver
that hands work to Celery must do, and with the bare worker (``bench.bare_celery``)
running, the front of the bare pipeline. No auth, no ledger, no validation: whatever
the project's receiver spends beyond this is its overhead.
"""

from __future__ import annotations

import json

from flask import Flask, request

from bench.bare_broker import POST_RESULT, QUEUE, bare_celery_app

celery_app = bare_celery_app("bench-bare-web")
app = Flask("bench-send-task")


@app.post("/webhooks/pax8")
def webhook() -> tuple[str, int]:
    """Parse the body and enqueue one task; 202."""
    data = json.loads(request.get_data())
    celery_app.send_task(
        POST_RESULT,
        args=[data["provisionRequest"]["id"], data["provisionAttempt"]["id"]],
        queue=QUEUE,
    )
    return "", 202


@app.get("/healthz")
def healthz() -> tuple[str, int]:
    """Liveness, for the start-up wait."""
    return "ok", 200
