"""The WSGI entry point: `gunicorn webapp.wsgi:app` (settings from GPUORCH_* environment variables)."""

from gpuorch.logs import configure_logging
from webapp import create_app

configure_logging()
app = create_app()
