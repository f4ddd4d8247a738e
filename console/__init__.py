"""The operator console: a small server-rendered web app over the same ledger functions as
the CLI (``fulfillment.views``, ``fulfillment.workflow.replay``).

Its own process (the Procfile's ``console`` line, ``python -m console``), on 127.0.0.1 by
default; it refuses to listen anywhere else without ``CONSOLE_USERS``. No JavaScript: every
page is HTML and every action a form.
"""
