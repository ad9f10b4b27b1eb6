"""The HTTP API server (FastAPI): ``create_app(Settings.load())`` and run it with uvicorn.

Routes by resource live in ``routes/``; requests become engine commands in ``gateway``;
reads come from the database and the market-data replica (``marketdata``), made
consistent with the server's own writes by ``consistency``. ``pmarket serve`` runs it.
"""

from .app import create_app
from .runtime import Runtime, create_admin
from .settings import Settings, WeakSecret

__all__ = ["Runtime", "Settings", "WeakSecret", "create_admin", "create_app"]
