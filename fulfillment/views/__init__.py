"""Read models for operators: what the CLI, the console and Prometheus show of the ledger.

* :mod:`~fulfillment.views.orders`: one order in full, the overview, a search with filters.
* :mod:`~fulfillment.views.webhook_configs`: Pax8's webhook configurations and which of the
  receiver's credentials are live.
* :mod:`~fulfillment.views.ledger_metrics`: orders by state and age, queue depth and
  reconciliation, read from Redis at each scrape.

Belongs here: code that reads and presents; nothing here writes to the ledger or sends a
task (an operator's action, such as a replay, is :mod:`fulfillment.workflow`).
"""
