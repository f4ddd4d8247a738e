"""The bare worker of ``bench.slow_vendor``: one task that makes the same vendor call as the
project's ``http`` adapter (one POST to ``VENDOR_HTTP_URL``, which answers after the set
latency), then one POST of the result to the sandbox.

Started from the Procfile ``worker`` line with ``-A bench.bare_vendor``, so it runs the same
pool (``WORKER_POOL``) and concurrency as the project's worker beside it; one module-level
``httpx.Client`` per process, with as many connections as the concurrency.
"""

from __future__ import annotations

import os

import httpx

from bench.bare_broker import POST_RESULT, bare_celery_app
from bench.bare_result import post_success

app = bare_celery_app("bench-bare-vendor")

VENDOR_URL = os.environ.get("VENDOR_HTTP_URL", "http://127.0.0.1:9/orders")
_limit = int(app.conf.worker_concurrency)
vendor = httpx.Client(
    timeout=30.0,
    limits=httpx.Limits(max_connections=_limit, max_keepalive_connections=_limit),
)


# A connection lost mid-call is tried again at once, a few times. The project's adapter does
# not (it reads it as "no answer" and repeats the call only after the call's deadline, since
# the vendor may have the order); the stub no longer resets connections
# (tests/test_vendor_stub.py), and bench.slow_vendor counts these retries per row.
@app.task(  # type: ignore[untyped-decorator]
    name=POST_RESULT,
    autoretry_for=(httpx.TransportError,),
    retry_kwargs={"max_retries": 3, "countdown": 0},
)
def provision_and_report(request_id: str, attempt_id: str) -> int:
    """Call the vendor for ``request_id``, then POST a Success result; the result's status."""
    order = {"type": "NetNew", "provisionRequest": {"id": request_id}}
    called = vendor.post(VENDOR_URL, json=order, headers={"Idempotency-Key": request_id})
    called.raise_for_status()
    return post_success(request_id, attempt_id)
