"""The Celery app ``celery -A worker.app worker`` / ``beat`` / ``flower`` run.

The one line that reads the environment (a malformed setting stops the process with one
line); everything else is :func:`worker.factory.create_celery`.
"""

from config.settings import load_settings
from worker.factory import create_celery

app = create_celery(load_settings(), hooks=True)
