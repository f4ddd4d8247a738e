"""How an order enters: parsed, recorded in the ledger and enqueued, in that order.

* :mod:`~fulfillment.intake.notifications`: a Pax8 Provision Notification parsed into a
  :class:`~fulfillment.ledger.Notice`, every id checked, errors naming the field.
* :mod:`~fulfillment.intake.accept`: record a notice and enqueue what it calls for; the one
  ``publish, then mark queued`` step (:func:`~fulfillment.intake.accept.enqueue`) that
  reconciliation and replay use too.
* :mod:`~fulfillment.intake.publisher`: the protocol of what sends tasks by name
  (``worker/publish.py`` implements it; the receiver never imports task code).

Belongs here: what the receiver, reconciliation and replay share to put an order in the
queue. CloudBlue's calls enter through :mod:`fulfillment.cloudblue`, which uses this.
"""
