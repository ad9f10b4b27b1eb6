"""The compiled engine is used only when it is complete and built from the current sources."""

import importlib.machinery
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pmarket.runtime import compiled

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def copy_package(tmp_path: Path) -> Path:
    """A copy of pmarket (the package init, the build loader and the engine) to build fake
    builds in."""
    (tmp_path / "pmarket" / "runtime").mkdir(parents=True)
    shutil.copy(compiled.PACKAGE_DIR.parent / "__init__.py", tmp_path / "pmarket")
    for name in ("__init__.py", "compiled.py"):
        shutil.copy(Path(compiled.__file__).parent / name, tmp_path / "pmarket" / "runtime")
    engine = tmp_path / "pmarket" / "engine"
    shutil.copytree(compiled.PACKAGE_DIR, engine,
                    ignore=shutil.ignore_patterns("*.so", "compiled.json", "__pycache__"))
    return engine


def fake_build(engine: Path) -> None:
    """Extension files that would crash if imported, and the manifest of a build."""
    for name in compiled.CORE:
        (engine / f"{name}{SUFFIX}").write_bytes(b"not a shared library")
    compiled.write_manifest(engine, engine)


def run_python(code: str, root: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("PMARKET_PURE_PYTHON", "PMARKET_REQUIRE_COMPILED")}
    return subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, env={**environ, "PYTHONPATH": str(root), **env})


WHICH = ("import pmarket.engine.trading as t, pmarket.runtime.compiled as c; "
         "print(c.mode, t.__file__.endswith('.py'))")


def test_sources_without_a_build_are_not_compiled(tmp_path):
    ok, why = compiled.check(copy_package(tmp_path))
    assert not ok and "not compiled" in why


def test_a_complete_current_build_is_used(tmp_path):
    engine = copy_package(tmp_path)
    fake_build(engine)
    assert compiled.check(engine) == (True, "compiled with mypyc, sources unchanged since "
                                            "the build")


def test_an_edited_source_makes_the_build_stale_and_names_the_file(tmp_path):
    engine = copy_package(tmp_path)
    fake_build(engine)
    with (engine / "trading.py").open("a") as f:
        f.write("\n# an edit\n")
    ok, why = compiled.check(engine)
    assert not ok and "stale" in why and "trading.py" in why


def test_a_build_without_manifest_or_with_a_missing_module_is_not_used(tmp_path):
    engine = copy_package(tmp_path)
    fake_build(engine)
    (engine / f"model{SUFFIX}").unlink()
    assert "incomplete" in compiled.check(engine)[1]
    fake_build(engine)
    (engine / compiled.MANIFEST).unlink()
    assert "compiled.json" in compiled.check(engine)[1]


def test_a_stale_build_runs_the_sources_and_warns(tmp_path):
    engine = copy_package(tmp_path)
    fake_build(engine)
    with (engine / "model.py").open("a") as f:
        f.write("\n# an edit\n")
    result = run_python(WHICH, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pure", "True"]
    assert "compiled build is stale (model.py changed" in result.stderr


def test_pure_python_can_be_forced_and_compiled_required(tmp_path):
    engine = copy_package(tmp_path)
    fake_build(engine)
    forced = run_python(WHICH, tmp_path, PMARKET_PURE_PYTHON="1")
    assert forced.stdout.split() == ["pure", "True"], forced.stderr
    (engine / "units.py").write_text((engine / "units.py").read_text() + "\n")
    required = run_python(WHICH, tmp_path, PMARKET_REQUIRE_COMPILED="1")
    assert required.returncode != 0 and "compiled engine required" in required.stderr


def test_the_core_modules_are_listed_once_in_compiled_py():
    """setup.py compiles, and the Makefile rebuilds on, ``compiled.CORE`` itself."""
    makefile = (ROOT / "Makefile").read_text()
    assert "$(shell $(PYTHON) pmarket/runtime/compiled.py)" in makefile
    listed = subprocess.run([sys.executable, compiled.__file__],
                            capture_output=True, text=True, check=True).stdout.split()
    assert listed == [f"pmarket/engine/{name}.py" for name in compiled.CORE]
    for path in ("Makefile", "setup.py"):
        text = (ROOT / path).read_text()
        assert not all(name in text for name in ("collateral", "queries", "snapshot",
                                                 "ledger")), f"{path} lists the core"


def test_the_compiler_is_pinned_once():
    """The build and the development environment use one exact mypy version."""
    import mypy.version

    pyproject = (ROOT / "pyproject.toml").read_text()
    pins = re.findall(r'"mypy([^"]*)"', pyproject)
    assert len(pins) == 2 and pins[0] == pins[1] and pins[0].startswith("=="), pins
    assert mypy.version.__version__ == pins[0][2:]


def build_copy(tmp_path: Path, edit: str = "", **env: str) -> subprocess.CompletedProcess:
    """``setup.py build_ext --inplace`` on a copy of the project (its engine sources),
    ``edit`` appended to its ``units.py``."""
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path)
    units = copy_package(tmp_path) / "units.py"
    units.write_text(units.read_text() + edit)
    environ = {k: v for k, v in os.environ.items() if k != "PMARKET_PURE_PYTHON"}
    return subprocess.run([sys.executable, "setup.py", "--quiet", "build_ext", "--inplace"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**environ, **env})


def no_build_in(tmp_path: Path) -> bool:
    engine = tmp_path / "pmarket" / "engine"
    return not list(engine.glob(f"*{SUFFIX}")) and not (engine / compiled.MANIFEST).exists()


def test_a_failed_compile_stops_saying_why_and_how_to_opt_out(tmp_path):
    done = build_copy(tmp_path, CC="/bin/false")  # no working C compiler
    assert done.returncode != 0, done.stderr
    assert "pmarket build: error: compiling the engine failed: " in done.stderr
    assert "/bin/false" in done.stderr and "PMARKET_PURE_PYTHON=1" in done.stderr
    assert "make build PURE_PYTHON=1" in done.stderr and "Traceback" not in done.stderr
    assert no_build_in(tmp_path)


def test_a_type_error_stops_the_compile_with_mypys_message(tmp_path):
    done = build_copy(tmp_path, '\nNOT_AN_INT: int = "a string"\n', CC="/bin/false")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "units.py" in output and "incompatible types" in output.lower(), output
    assert "compiling the engine failed: mypyc refused the sources" in done.stderr
    assert "PMARKET_PURE_PYTHON=1" in done.stderr and no_build_in(tmp_path)


def test_pure_python_on_purpose_builds_nothing_and_says_so(tmp_path):
    done = build_copy(tmp_path, PMARKET_PURE_PYTHON="1", CC="/bin/false")
    assert done.returncode == 0, done.stderr
    assert "not compiling the engine (pure Python, on purpose)" in done.stderr
    assert no_build_in(tmp_path)


@pytest.mark.skipif(os.environ.get("PMARKET_REQUIRE_COMPILED") != "1",
                    reason="only where a compiled build is required (CI)")
def test_the_required_compiled_engine_is_running(tmp_path):
    import pmarket.engine.trading as trading

    assert compiled.mode == "compiled" and compiled.is_compiled(trading)
    # also outside the checkout (as the pmarket command runs): the build is in the package
    result = subprocess.run([sys.executable, "-c", WHICH], cwd=tmp_path, capture_output=True,
                            text=True)
    assert result.stdout.split() == ["compiled", "False"], result.stderr
