"""The WSGI entry point: `gunicorn webapp.wsgi:app` (settings from GPUORCH_* environment variables)."""

from gpuorch.logs import configure_logging
from gpuorch.settings import Settings
from webapp import create_app

settings = Settings.from_env()
configure_logging(settings.log_level, settings.log_format)
app = create_app(settings)
