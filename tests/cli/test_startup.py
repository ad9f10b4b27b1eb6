"""Every ``pmarket`` command loads every command module (``load_commands``), so what those
modules import at their top is paid by every run, ``pmarket --help`` included. The heavy
layers (the API's pydantic models, the client, the simulator, the server, rich's
consoles) are imported inside the commands that use them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pmarket.api", "pmarket.client", "pmarket.sim", "pmarket.server", "pmarket.tui",
         "pydantic", "fastapi", "sqlalchemy", "textual", "rich.console", "rich.table")


def test_loading_the_commands_imports_no_heavy_layer():
    code = ("import sys; from pmarket.cli import load_commands; load_commands(); "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.split() == []


def test_the_tui_default_url_is_the_clients():
    from pmarket.cli import tui
    from pmarket.client import DEFAULT_URL

    assert tui.DEFAULT_URL == DEFAULT_URL
