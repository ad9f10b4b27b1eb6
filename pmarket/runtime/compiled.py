"""Which engine runs: the mypyc-compiled core, or its pure-Python source.

The core modules (``CORE``) can be compiled with mypyc (``setup.py``; ``make build``
compiles them in place for a development checkout). A build writes ``compiled.json``
next to them: the SHA-256 of every core source it was compiled from. ``activate()``,
called by the root package ``pmarket`` before anything can import a core module, uses
the compiled modules only when they are all present and every source still matches its
recorded hash. Otherwise it installs an import hook that loads the ``.py`` sources instead (an
extension module would otherwise win over the ``.py`` next to it), so an edited source
is never shadowed by stale compiled code; a stale build also warns, loudly, once.

Environment:
    PMARKET_PURE_PYTHON=1: always run the pure-Python engine.
    PMARKET_REQUIRE_COMPILED=1: refuse (``RuntimeError``) to run without a current
        compiled build; CI sets it so that it never tests the wrong engine.

This module reads files and the environment: it is part of the runtime, not the engine.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

CORE = ("limits", "units", "commands", "events", "model", "state", "engine", "trading",
        "collateral", "admin", "timers", "queries", "snapshot")
"""Core modules compiled by mypyc: the one list (``setup.py`` compiles these, the Makefile
rebuilds when one of them changes, ``pmarket --version`` names the build). ``commands``
is compiled too, so the engine reads a command's fields as struct fields; other packages
build commands with values of any type and the engine rejects the bad ones as data, so
the fields a client controls are stored unchecked (``commands.Unchecked``)."""

MANIFEST = "compiled.json"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / "engine"
"""Where the core modules, their compiled extensions and ``compiled.json`` live."""
PACKAGE = "pmarket.engine"

mode = "pure"
"""``"compiled"`` or ``"pure"``, set by ``activate``."""
reason = "not activated"
"""Why ``mode`` is what it is, in words."""


def source_digests(package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """SHA-256 of each core module's source, by file name."""
    return {f"{name}.py": hashlib.sha256((package_dir / f"{name}.py").read_bytes()).hexdigest()
            for name in CORE}


def write_manifest(target_dir: Path, package_dir: Path = PACKAGE_DIR) -> Path:
    """Record the sources a build compiled (``setup.py`` calls this after a build)."""
    path = target_dir / MANIFEST
    path.write_text(json.dumps({"sources": source_digests(package_dir)}, indent=1) + "\n")
    return path


def _compiled_files(package_dir: Path) -> list[str]:
    """Core modules that have an extension module next to their source."""
    return [name for name in CORE
            if any((package_dir / f"{name}{suffix}").exists()
                   for suffix in importlib.machinery.EXTENSION_SUFFIXES)]


def check(package_dir: Path = PACKAGE_DIR) -> tuple[bool, str]:
    """Whether a complete, current compiled build is present, and why (not)."""
    built = _compiled_files(package_dir)
    if not built:
        return False, "not compiled (run `make build`)"
    if len(built) != len(CORE):
        missing = sorted(set(CORE) - set(built))
        return False, f"incomplete compiled build: {', '.join(missing)} not compiled"
    try:
        recorded = json.loads((package_dir / MANIFEST).read_text())["sources"]
    except (OSError, ValueError, KeyError):
        return False, f"compiled build has no valid {MANIFEST}: rebuild with `make build`"
    changed = [f for f, digest in source_digests(package_dir).items()
               if recorded.get(f) != digest]
    if changed:
        return False, (f"compiled build is stale ({', '.join(changed)} changed since it "
                       "was built): rebuild with `make build`")
    return True, "compiled with mypyc, sources unchanged since the build"


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Loads the core modules from their ``.py`` files, ignoring compiled ones."""

    def __init__(self, package: str, package_dir: Path) -> None:
        self.names = {f"{package}.{name}": package_dir / f"{name}.py" for name in CORE}

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        source = self.names.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def activate() -> str:
    """Choose the engine for this process (once, before any core module is imported).

    Returns:
        ``"compiled"`` or ``"pure"`` (also in ``mode``; the why in ``reason``).

    Raises:
        RuntimeError: if PMARKET_REQUIRE_COMPILED is set and the compiled build is
            missing or stale.
    """
    global mode, reason
    if any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        return mode
    ok, why = check()
    if os.environ.get("PMARKET_PURE_PYTHON", "") not in ("", "0"):
        ok, why = False, "pure Python forced by PMARKET_PURE_PYTHON"
    elif not ok and os.environ.get("PMARKET_REQUIRE_COMPILED", "") not in ("", "0"):
        raise RuntimeError(f"pmarket engine: compiled engine required, but {why}")
    elif not ok and "stale" in why:
        warnings.warn(f"pmarket engine: {why}; running the pure-Python engine",
                      RuntimeWarning, stacklevel=2)
    if not ok:
        sys.meta_path.insert(0, _SourceFinder(PACKAGE, PACKAGE_DIR))
    mode, reason = ("compiled" if ok else "pure"), why
    return mode


def is_compiled(module: ModuleType) -> bool:
    """Whether an imported module is an extension (compiled) module."""
    return not str(getattr(module, "__file__", "")).endswith(".py")


if __name__ == "__main__":  # the Makefile's list of sources a build depends on
    print(" ".join(f"pmarket/engine/{name}.py" for name in CORE))
