"""gunicorn entry point: ``gunicorn receiver.wsgi:app`` (see the Procfile)."""

from config.settings import load_settings
from receiver.app import configure_process, create_app

settings = load_settings("receiver")
configure_process(settings)
app = create_app(settings)
