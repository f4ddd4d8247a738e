"""The webhook receiver: a thin Flask app that authenticates, records, enqueues, answers 202.

``receiver.app.create_app`` is the factory. This package imports nothing itself, so
``gunicorn -c python:receiver.gunicorn_conf`` can patch the standard library for gevent
before anything (redis-py, kombu) is imported.
"""
