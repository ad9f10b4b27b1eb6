"""Optional mypyc build of the engine core (metadata lives in pyproject.toml).

- ``pip install .`` (a wheel, as CI's and production installs are): the core modules
  listed in ``pmarket.engine.compiled.CORE`` are compiled with mypyc.
- ``pip install -e .`` (a development checkout): nothing is compiled here; ``make
  build`` compiles in place (``python setup.py build_ext --inplace``).
- ``PMARKET_PURE_PYTHON=1``, or any failure to compile: the pure-Python engine, with a
  message saying why. pmarket behaves the same either way, only slower.

Every successful build writes ``pmarket/engine/compiled.json`` (the hashes of the
sources it compiled) next to the compiled modules; at import, ``pmarket.engine``
ignores a build whose sources have changed since (see ``pmarket/engine/compiled.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
ENGINE = ROOT / "pmarket" / "engine"
CORE = ("limits", "units", "events", "book", "ledger", "engine", "trading", "collateral",
        "admin", "queries", "snapshot")  # == pmarket.engine.compiled.CORE (a test checks)


def _say(message: str) -> None:
    print(f"pmarket build: {message}", file=sys.stderr, flush=True)


def _manifest(target: Path) -> None:
    """Write compiled.json for the sources just compiled (see compiled.write_manifest)."""
    sys.path.insert(0, str(ENGINE))
    try:
        import compiled  # the module alone: importing pmarket.engine would activate it
    finally:
        sys.path.pop(0)
    target.mkdir(parents=True, exist_ok=True)
    compiled.write_manifest(target, ENGINE)


class OptionalBuildExt(build_ext):
    """Compile the engine if possible; fall back to pure Python, saying so, if not."""

    def run(self) -> None:
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as exc:  # any compiler or toolchain failure
            _say(f"compiling the engine failed ({exc}); installing the pure-Python engine")
            return
        target = ENGINE if self.inplace else Path(self.build_lib) / "pmarket" / "engine"
        _manifest(target)
        _say(f"engine compiled with mypyc ({len(CORE)} modules)")


def _extensions() -> list:
    if os.environ.get("PMARKET_PURE_PYTHON", "") not in ("", "0"):
        _say("PMARKET_PURE_PYTHON is set: not compiling the engine")
        return []
    if "editable_wheel" in sys.argv:
        _say("editable install: not compiling the engine (run `make build`)")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _say("mypy is not installed: installing the pure-Python engine")
        return []
    paths = [f"pmarket/engine/{name}.py" for name in CORE]
    try:
        return mypycify(paths, opt_level="3", group_name="pmarket.engine.core")
    except (Exception, SystemExit) as exc:  # mypy type errors exit
        _say(f"mypyc could not compile the engine ({exc!r}); installing pure Python")
        return []


os.chdir(ROOT)  # mypycify takes paths relative to the project
setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
