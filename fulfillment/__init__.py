"""The domain of fulfilment, one concern per subpackage (``docs/architecture.md#layout``).

From the bottom up (each imports only those above it in this list, and none the other way):

* :mod:`fulfillment.runtime`: process infrastructure, nothing of the domain: the Redis and
  Pax8 clients and the errors that mean "Redis cannot take this now", the metrics every
  process records, their exporter and prometheus_client's multi-process set-up.
* :mod:`fulfillment.ledger`: persistence. Which order a record is (refs), its states, every
  Redis key name, the record types, the Lua scripts (the only writers of a record), the
  store that runs them, the queries that read, locks, and the log line of a state change.
* :mod:`fulfillment.names`: the stable task and queue names (a public contract).
* :mod:`fulfillment.intake`: how an order enters: a Pax8 notification parsed, recorded and
  enqueued; the publisher protocol that sends tasks.
* :mod:`fulfillment.cloudblue`: the CloudBlue channel: its calls, which record each is, the
  Pax8-shaped order an adapter reads, the wait for the outcome and the answer built from it.
* :mod:`fulfillment.workflow`: what happens to an order after intake: provisioning through
  the adapter, reporting to Pax8, reconciliation, replay, and the policies they follow.
* :mod:`fulfillment.views`: read models for operators (the CLI, the console, Prometheus).
* :mod:`fulfillment.services`: one process's collaborators, built from one ``Settings``.

Plain functions with their collaborators passed in (ledger, Pax8 client, adapter,
publisher), so they are easy to test; the Celery tasks in ``tasks/`` are thin shims.
"""
