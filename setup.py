"""The mypyc build of the engine core (metadata lives in pyproject.toml).

- ``pip install .`` (a wheel, as CI's and production installs are): the core modules
  listed in ``pmarket.runtime.compiled.CORE`` (the one list) are compiled with mypyc, by
  the mypy version pinned in pyproject.toml.
- ``pip install -e .`` (a development checkout): nothing is compiled here; ``make
  build`` compiles in place (``python setup.py build_ext --inplace``).
- ``PMARKET_PURE_PYTHON=1`` (``make build PURE_PYTHON=1``): nothing is compiled, on
  purpose; pmarket behaves the same, 2-3x slower.

A compile that fails stops the build with the reason and that opt-out: nobody gets the
slower engine without asking for it. Each step says what it does and how long it took.

Every successful build writes ``pmarket/engine/compiled.json`` (the hashes of the
sources it compiled) next to the compiled modules; at import, ``pmarket``
ignores a build whose sources have changed since (see ``pmarket/runtime/compiled.py``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.modified import newer_group

ROOT = Path(__file__).resolve().parent
ENGINE = ROOT / "pmarket" / "engine"
OPT_OUT = ("to install the pure-Python engine instead (same behaviour, 2-3x slower), "
           "set PMARKET_PURE_PYTHON=1 (make build PURE_PYTHON=1)")


def _load_compiled():
    """``pmarket/runtime/compiled.py`` alone (importing ``pmarket`` would activate
    a build): it holds the list of core modules and writes the build's manifest."""
    spec = importlib.util.spec_from_file_location(
        "_pmarket_compiled", ROOT / "pmarket" / "runtime" / "compiled.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compiled = _load_compiled()


def _say(message: str) -> None:
    print(f"pmarket build: {message}", file=sys.stderr, flush=True)


def _fail(why: str) -> None:
    """Stop the build, saying why and how to opt out of compiling."""
    _say(f"error: compiling the engine failed: {why}")
    _say(OPT_OUT)
    raise SystemExit(1)


class ReportingBuildExt(build_ext):
    """Compile the engine's C extensions, saying which and how long they took; a failure
    stops the build (``_fail``)."""

    shims_s = 0.0  # the small per-module import shims, reported together

    def run(self) -> None:
        if not self.extensions:
            return
        started = time.monotonic()
        try:
            super().run()
        except Exception as exc:  # any compiler or toolchain failure
            _fail(f"{type(exc).__name__}: {exc}")
        _say(f"C: {len(self.extensions) - 1} import shims (one per module) in "
             f"{self.shims_s:.1f} s")
        target = ENGINE if self.inplace else Path(self.build_lib) / "pmarket" / "engine"
        target.mkdir(parents=True, exist_ok=True)
        compiled.write_manifest(target, ENGINE)
        _say(f"engine compiled with mypyc ({len(compiled.CORE)} modules) in "
             f"{time.monotonic() - started:.0f} s")

    def build_extension(self, ext) -> None:
        started = time.monotonic()
        if not ext.name.endswith("__mypyc"):
            super().build_extension(ext)
            self.shims_s += time.monotonic() - started
            return
        size = sum(Path(source).stat().st_size for source in ext.sources) / 1e6
        if not (self.force or newer_group(ext.sources + ext.depends,
                                          self.get_ext_fullpath(ext.name))):
            _say(f"C: {ext.name} ({size:.1f} MB of C) unchanged since the last build")
            return
        _say(f"C: compiling {ext.name}, the whole core ({size:.1f} MB of C; the long "
             "step, 1-2 min) ...")
        super().build_extension(ext)
        _say(f"C: {ext.name} done in {time.monotonic() - started:.0f} s")


def _extensions() -> list:
    if os.environ.get("PMARKET_PURE_PYTHON", "") not in ("", "0"):
        _say("PMARKET_PURE_PYTHON is set: not compiling the engine (pure Python, on "
             "purpose)")
        return []
    if "editable_wheel" in sys.argv:
        _say("editable install: not compiling the engine (run `make build`)")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        _fail(f"mypy (mypyc) is not installed ({exc}); `pip install -e '.[dev]'` "
              "installs the pinned version")
    paths = [f"pmarket/engine/{name}.py" for name in compiled.CORE]
    _say(f"mypyc: type-checking {len(paths)} core modules and translating them to C ...")
    started = time.monotonic()
    try:
        extensions = mypycify(paths, opt_level="3", group_name="pmarket.engine.core")
    except (Exception, SystemExit) as exc:  # mypy type errors exit (printed above)
        _fail(f"mypyc refused the sources ({exc!r}; its messages are above)")
    _say(f"mypyc: done in {time.monotonic() - started:.1f} s")
    return extensions


os.chdir(ROOT)  # mypycify takes paths relative to the project
setup(ext_modules=_extensions(), cmdclass={"build_ext": ReportingBuildExt})
