"""The bare workers' result POST: one ``httpx.Client`` per process (each pool process gets its
own copy after the fork, with an empty connection pool) and one token per process, refreshed
once on a 401 (the benchmarks reset the sandbox, which forgets its tokens). No Celery app
here: a module that defines tasks on one would lend them to every app of its process
(Celery's tasks are shared by default).
"""

from __future__ import annotations

import os

import httpx

API_URL = os.environ.get("PAX8_API_URL", "http://127.0.0.1:8080/v2")
TOKEN_URL = os.environ.get("PAX8_TOKEN_URL", "http://127.0.0.1:8080/v1/token")
http = httpx.Client(timeout=10.0)
_token: list[str] = []


def _bearer(fresh: bool = False) -> str:
    if fresh or not _token:
        response = http.post(
            TOKEN_URL,
            json={
                "client_id": os.environ.get("PAX8_CLIENT_ID", "sandbox-client"),
                "client_secret": os.environ.get("PAX8_CLIENT_SECRET", "sandbox-secret"),
                "audience": "api://provisioning",
                "grant_type": "client_credentials",
            },
        )
        response.raise_for_status()
        _token[:] = [response.json()["access_token"]]
    return _token[0]


def post_success(request_id: str, attempt_id: str) -> int:
    """POST a Success result for ``attempt_id``; the HTTP status."""
    body = {"provisionAttemptId": attempt_id, "status": "Success"}
    url = f"{API_URL}/provision-requests/{request_id}/results"
    response = http.post(url, json=body, headers={"Authorization": f"Bearer {_bearer()}"})
    if response.status_code == 401:
        headers = {"Authorization": f"Bearer {_bearer(fresh=True)}"}
        response = http.post(url, json=body, headers=headers)
    return response.status_code
