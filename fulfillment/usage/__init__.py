"""Usage reporting to Pax8: every subscription's period totals posted daily, none missed.

What belongs here (the rest of the product only calls in at a few points: the provisioning
outcome notes a subscription, beat ticks :mod:`tasks.usage`, beat's exporter reads
:mod:`fulfillment.usage.metrics`, ``fulfill usage`` reads and posts):

* ``models``: what is kept, as types (the key names are
  :class:`fulfillment.ledger.keys.UsageKeys`, with every other key of the project);
* ``store`` and ``lua/``: the only writer (one Lua script per change, every key in KEYS);
* ``clock`` and ``periods``: "now" (injectable), billing periods, the deadline and cutoff;
* ``context``: the store, clock, policy, Usage API client and adapters of a process;
* ``registry``: which subscriptions exist, from the provisioning outcomes;
* ``batches``: splitting a subscription's lines into posts Pax8 takes (≤ 50 lines,
  overwrite then append);
* ``limiter``: the rate limit shared by every worker (Redis);
* ``daily`` and ``posting``: the daily run (plan, then one job per subscription and
  period) and the posting of one job;
* ``overdue``: what is owed before the cutoff, and the alert;
* ``metrics``: what beat's exporter shows.

``docs/usage.md`` is the operator's and the vendor's view of it.
"""
