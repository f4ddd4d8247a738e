"""The Celery side: the app, its reliability settings, queues, beat schedule and signals."""
