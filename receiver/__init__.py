"""The webhook receiver: a thin Flask app that authenticates, records, enqueues, answers 202
(a CloudBlue call: answers with its outcome once the worker stored it).

``receiver.app.create_app`` is the factory. This package imports nothing itself, so
``gunicorn -c python:receiver.gunicorn_conf`` can patch the standard library for gevent
before anything (redis-py, kombu) is imported.
"""
