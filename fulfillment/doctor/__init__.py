"""``fulfill doctor``: is every wire of a deployment right?

One check per function, each answering one question an operator asks first when something
looks wrong, with a :class:`~fulfillment.doctor.result.Finding` (``ok``, ``warn`` or
``fail``, what was seen, and the fix in one line):

* :mod:`~fulfillment.doctor.redis_checks`: Redis answers, keeps an AOF, has the replicas
  (and the Sentinel quorum) the settings rely on;
* :mod:`~fulfillment.doctor.pax8_checks`: both credential sets get tokens, each
  environment's latest webhook configuration points at ``PUBLIC_URL`` with the header and
  a credential the receiver accepts, and the receiver answers there;
* :mod:`~fulfillment.doctor.process_checks`: every queue has a consumer, beat runs
  reconciliation, the workers' clocks agree with Redis's, no order waits for an operator;
* :mod:`~fulfillment.doctor.vendor_checks`: the vendor endpoint refuses a call without the
  token.

:mod:`~fulfillment.doctor.run` runs them all in order (:data:`~fulfillment.doctor.run.CHECKS`);
:mod:`~fulfillment.doctor.store` keeps the scheduled run's report in Redis, where the
console and the beat exporter (:mod:`~fulfillment.doctor.metrics`) read it. What runs a
check is handed in (:class:`~fulfillment.doctor.context.Doctor`): this package reaches
Celery only through the :class:`~fulfillment.doctor.context.Workers` protocol.
"""
