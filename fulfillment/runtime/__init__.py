"""Process infrastructure: what every process needs to run, and nothing of the domain.

* :mod:`~fulfillment.runtime.clients`: the Redis and Pax8 clients built from ``Settings``
  (one timeout policy per kind of user), and :data:`~fulfillment.runtime.clients.REDIS_UNAVAILABLE`,
  the one list of errors that mean "Redis cannot take this now".
* :mod:`~fulfillment.runtime.metrics`: every metric a process records, defined once.
* :mod:`~fulfillment.runtime.exporter`: the ``/metrics`` endpoint a process kind serves.
* :mod:`~fulfillment.runtime.multiprocess`: prometheus_client's multi-process mode.

Belongs here: what a receiver, a worker, beat, the console or the CLI needs whatever work it
does. Does not: anything that knows an order, a ledger state or a key (that is
:mod:`fulfillment.ledger` and above). Imports nothing else of ``fulfillment``.
"""
