"""The webhook receiver: a thin Flask app that authenticates, records, enqueues, answers 202."""

from receiver.app import create_app

__all__ = ["create_app"]
