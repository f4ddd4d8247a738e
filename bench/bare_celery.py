"""The bare worker: one task that makes one httpx POST of a ProvisionResult to the sandbox.

Started from the Procfile ``worker`` line with ``-A bench.bare_celery`` (same pool and
concurrency), with the sandbox's ``PAX8_*`` variables; the POST is
:func:`bench.bare_result.post_success`.
"""

from __future__ import annotations

from bench.bare_broker import POST_RESULT, bare_celery_app
from bench.bare_result import post_success

app = bare_celery_app("bench-bare-worker")


@app.task(name=POST_RESULT)  # type: ignore[untyped-decorator]
def post_result(request_id: str, attempt_id: str) -> int:
    """POST a Success result for ``attempt_id``; the HTTP status."""
    return post_success(request_id, attempt_id)
