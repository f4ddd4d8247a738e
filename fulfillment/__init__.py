"""The domain logic of fulfilment: ledger, intake, provisioning, reporting, reconciliation.

Plain functions with their collaborators passed in (ledger, Pax8 client, adapter,
publisher), so they are easy to test; the Celery tasks in ``tasks/`` are thin shims.
"""
