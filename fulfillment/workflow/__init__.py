"""What happens to an order once it is in the queue, as plain functions a task calls.

* :mod:`~fulfillment.workflow.provisioning`: claim the record, call the vendor adapter once,
  store its outcome, then report it (``fulfil``: what the per-type task runs).
* :mod:`~fulfillment.workflow.reporting`: post the ProvisionResult each attempt is owed.
* :mod:`~fulfillment.workflow.reconcile`: find what a lost webhook, a crash or an outage
  left undone, and redo it.
* :mod:`~fulfillment.workflow.replay`: an operator's replay, the safe way for each state.
* :mod:`~fulfillment.workflow.orders`: the typed order an adapter receives for a record.
* :mod:`~fulfillment.workflow.outcomes`: the one outcome a function hands back to its task.
* :mod:`~fulfillment.workflow.policies` (and ``backoff``): retry budgets, leases and timing,
  built once from ``Settings``.

Belongs here: the logic of an order's life after intake. A function takes its collaborators
(:class:`~fulfillment.services.Services`, or the ledger, the Pax8 client and a publisher) as
arguments; the Celery tasks in ``tasks/`` are thin shims over these.
"""
