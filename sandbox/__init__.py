"""A local Pax8: the whole Vendor Provisioning API, simulation and fault injection, on loopback.

The tests, the demo and the benchmarks talk to this instead of api.pax8.com. It plays both
Pax8 environments (production and simulation, each with its own credentials, provisioner,
webhook configurations and data), issues OAuth2 tokens at ``/v1/token``, serves the API under
``/v2``, delivers Provision Notifications with Pax8's retry rules, and offers a
``/sandbox/...`` control plane to make orders, inject faults and observe what clients did.
State is in memory only.

It depends on the standard library, Flask, werkzeug and httpx only: nothing of the worker.

Modules: ``config`` (settings), ``options`` (command line), ``server`` (``serve``),
``app`` (``create_app``), ``api`` (Pax8 routes), ``control`` (``/sandbox`` routes),
``store`` (state), ``auth`` (tokens), ``orders`` (order defaults), ``results`` (result
validation), ``paging``, ``faults``, ``delivery`` (webhooks and retries), ``calls``
(counters), ``errors`` (the JSON error shape), ``context`` (the parts bundled per app).
"""

from sandbox.config import ConfigError, SandboxConfig

__all__ = ["ConfigError", "SandboxConfig"]
