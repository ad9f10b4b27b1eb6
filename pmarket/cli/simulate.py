"""``pmarket simulate FILE...``: run scenario files and report what happened.

Thin by design: validate every file first (exit 2 with located problems), run each on a
fresh target (``--target URL``: a running server, admin credentials from
``--admin-email``/``--admin-password`` or ``PMARKET_ADMIN_EMAIL``/
``PMARKET_ADMIN_PASSWORD``; exit 2 saying what is missing) with a progress bar for long
runs, print the report tables and the notes on steps the target could not run as
written, optionally give the full reports as JSON (``--json``: on standard output instead
of the tables; ``--output FILE``: into a file, never one of the scenario files), and exit
1 if any expectation failed.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

from . import app

LONG_RUN = 2_000
"""Units of work from which a run shows a progress bar."""


@app.command()
def simulate(
    files: list[Path] = typer.Argument(..., help="Scenario files (YAML), e.g. scenarios/*.yaml."),
    seed: int | None = typer.Option(None, help="Override every scenario's seed."),
    as_json: bool = typer.Option(False, "--json", help="Print the full reports as JSON on "
                                 "standard output, instead of the tables."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Also write the full "
                                       "reports as JSON into this file (never an input)."),
    target: str | None = typer.Option(
        None, help="URL of a running pmarket server (default: an in-process engine)."),
    admin_email: str | None = typer.Option(
        None, envvar="PMARKET_ADMIN_EMAIL",
        help="Admin email for --target (events, resolution, audit)."),
    admin_password: str | None = typer.Option(
        None, envvar="PMARKET_ADMIN_PASSWORD", help="Admin password for --target."),
    scale: float = typer.Option(
        1.0, min=0.0001, help="Multiply generated flow: load burst order counts, load user "
                              "groups and agent simulation durations (e.g. 0.1)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print one line per scenario."),
    api_keys: bool = typer.Option(
        False, "--api-keys", envvar="PMARKET_SIM_API_KEYS",
        help="With --target: each user trades through an API key it creates at sign-up."),
) -> None:
    """Replay scenario files against the exchange and check their expectations."""
    # Imported here, not at the top: every command loads this module, and the simulator
    # (the client and the API's models) and rich are most of a second of start-up.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    from ..sim import (
        ScenarioError,
        TargetUnavailable,
        estimate_work,
        load_scenario,
        open_target,
        render,
        run_scenario,
    )

    errors = Console(stderr=True)
    console = errors if as_json else Console()  # stdout holds the JSON alone then
    if output is not None and any(_same_file(output, path) for path in files):
        errors.print(f"error: --output {output} is one of the scenario files; it would be "
                     "overwritten", style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2)
    scenarios = []
    bad = False
    for path in files:
        try:
            scenarios.append(load_scenario(path))
        except ScenarioError as exc:
            bad = True
            for problem in exc.problems:
                errors.print(str(problem), style="red", markup=False, highlight=False,
                             soft_wrap=True)
        except OSError as exc:
            bad = True
            errors.print(f"{path}: cannot read: {exc.strerror}", style="red", markup=False)
    if bad:
        raise typer.Exit(2)
    def connect():
        return open_target(target, admin_email, admin_password, api_keys)

    try:
        connect().close()
    except TargetUnavailable as exc:
        errors.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None

    reports = []
    for scenario in scenarios:
        run_target = connect()
        total = estimate_work(scenario, scale)
        try:
            if total >= LONG_RUN and not quiet:
                with Progress(TextColumn("{task.description}"), BarColumn(),
                              MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                              transient=True) as bar:
                    task = bar.add_task(scenario.name, total=total)

                    def advance(n: int, bar: Progress = bar, task: TaskID = task) -> None:
                        bar.advance(task, n)

                    report = run_scenario(scenario, run_target, seed, scale, advance)
            else:
                report = run_scenario(scenario, run_target, seed, scale)
        finally:
            run_target.close()
        reports.append(report)
        if quiet or as_json:  # with --json, these lines go to stderr
            mark = "[green]PASS[/]" if report.passed else "[red]FAIL[/]"
            console.print(f"{mark} {scenario.name} ({scenario.file})")
            for failure in report.failures:
                console.print(f"  x {failure}", style="red", markup=False, soft_wrap=True)
            for note in report.notes:
                console.print(f"  ! {note}", style="yellow", markup=False, soft_wrap=True)
        else:
            console.print(render(report))
            console.print()

    failed = [r for r in reports if not r.passed]
    if as_json or output is not None:
        data = orjson.dumps({"passed": not failed, "reports": [r.to_dict() for r in reports]},
                            option=orjson.OPT_INDENT_2)
        if output is not None:
            output.write_bytes(data)
        if as_json:
            typer.echo(data.decode())
    if len(reports) > 1:
        style = "red" if failed else "green"
        console.print(f"{len(reports) - len(failed)} of {len(reports)} scenarios passed",
                      style=style)
    if failed:
        raise typer.Exit(1)


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (``a`` may not exist yet)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and a.samefile(b))
    except OSError:
        return False
