"""gunicorn settings of the receiver (``gunicorn -c python:receiver.gunicorn_conf``).

The receiver runs gevent workers: each connection is a greenlet, so clients that connect
and stall (half-sent requests, idle keep-alives) cost a few kilobytes each instead of a
worker or a thread, and a webhook is answered while hundreds of them sit; the CloudBlue
route's wait for its outcome costs a greenlet too. gevent has to patch the standard
library before anything imports it, and with ``--preload`` the app is imported in the
master: so the patch happens here, in the config module gunicorn loads first.

The master also serves the workers' metrics on ``WEB_METRICS_PORT`` (``receiver/metrics.py``):
its multi-process directory is made here, before the app is imported and any worker forked.

The graceful timeout is set here too (``receiver/lifecycle.py``): it follows
``CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS``, so that a stop lets every waiting CloudBlue call be
answered. Everything else stays on the Procfile's command line, where an operator reads it.
"""

import warnings

from gevent import monkey

# gunicorn's own config module imports ssl before any config file runs; the receiver
# terminates no TLS in gunicorn (a proxy or the platform does), so that warning says
# nothing here. Every other module (redis-py, kombu, Flask) is imported after this patch.
warnings.filterwarnings("ignore", message="Monkey-patching ssl after ssl has already been imported")
monkey.patch_all()

worker_class = "gevent"

from config.settings import ConfigError, Settings, build_settings  # noqa: E402 - after the patch
from receiver.lifecycle import graceful_timeout_seconds  # noqa: E402
from receiver.metrics import web_metrics  # noqa: E402

_settings: Settings | None
try:
    _settings = build_settings()
except ConfigError:
    _settings = None  # the app's import reports it, with the settings' one line

# Outlasts a CloudBlue call's wait for its outcome, so a stop answers every waiting call.
graceful_timeout = graceful_timeout_seconds(_settings)

web_metrics.prepare(_settings)
when_ready = web_metrics.when_ready
post_fork = web_metrics.post_fork
child_exit = web_metrics.child_exit
on_exit = web_metrics.on_exit
