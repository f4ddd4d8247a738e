"""Celery tasks: one per request type, the report task and the reconcile task (thin shims)."""
