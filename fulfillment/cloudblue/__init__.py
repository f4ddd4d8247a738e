"""The CloudBlue Commerce channel: request-URL calls in, their outcome back in the answer.

* :mod:`~fulfillment.cloudblue.calls`: a call's operation (read tolerantly), its checked
  payload, and which ledger record it is.
* :mod:`~fulfillment.cloudblue.intake`: a call parsed, named after its record, recorded and
  enqueued (through :mod:`fulfillment.intake`).
* :mod:`~fulfillment.cloudblue.orders`: the Pax8-shaped order an adapter reads for a
  CloudBlue record.
* :mod:`~fulfillment.cloudblue.awaiting`: the receiver's wait on Redis for the outcome.
* :mod:`~fulfillment.cloudblue.response`: the ``ProvisioningResponsePayload`` built from it
  (its JSON schema is ``schemas/``).

Belongs here: everything that knows CloudBlue's wire format or its rules. The HTTP route is
``receiver/cloudblue.py``; the typed payload an adapter reads is ``vendors/cloudblue.py``.
"""
