"""The web page and HTTP API behind serve.py (``app.create_app`` builds it)."""

from model.server.app import create_app
from model.server.forms import content_disposition
from model.server.guards import MB, allowed_host_names
from model.server.matting import run_matte

__all__ = ["MB", "allowed_host_names", "content_disposition", "create_app", "run_matte"]
