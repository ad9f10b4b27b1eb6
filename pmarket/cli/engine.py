"""``pmarket engine``: run one shard's engine service against Redis until told to stop.

SIGTERM or SIGINT stops it cleanly: the batch in hand is finished and a snapshot is
written. A kill -9 is recovered from at the next start (see ``pmarket.runtime.service``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

import typer

from pmarket.cli import app
from pmarket.cli.preflight import require_redis

REDIS_DEFAULT = "redis://127.0.0.1:6379/0"
REDIS_URL_HELP = "Redis URL of the bus."
PREFIX_HELP = "First segment of every Redis key (several deployments can share a Redis)."


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` on a fresh event loop (uvloop when installed: its transports
    and future wake-ups cost about half of asyncio's); SIGTERM and SIGINT set ``stop``."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    with asyncio.Runner(loop_factory=_loop_factory()) as loop_runner:
        loop_runner.run(runner())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # optional: installed with uvicorn[standard]
    except ImportError:
        return None
    return uvloop.new_event_loop


def configure_logging(level: str) -> None:
    """Log lines with time, level and logger name to stderr."""
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command("engine")
def engine(
    redis_url: str = typer.Option(REDIS_DEFAULT, "--redis-url", envvar="PMARKET_REDIS_URL",
                                  help=REDIS_URL_HELP),
    snapshot_dir: str = typer.Option(None, "--snapshot-dir", envvar="PMARKET_SNAPSHOT_DIR",
                                     help="Directory of the snapshots; none: replay the "
                                          "whole event stream at start (never trimmed)."),
    shard: str = typer.Option("main", "--shard", envvar="PMARKET_SHARD",
                              help="The shard whose command stream this engine owns."),
    prefix: str = typer.Option("pmarket", "--prefix", envvar="PMARKET_REDIS_PREFIX",
                               help=PREFIX_HELP),
    snapshot_every: int = typer.Option(50_000, help="Snapshot after this many commands."),
    snapshot_interval: float = typer.Option(60.0, help="... or after this many seconds."),
    batch_size: int = typer.Option(500, help="Most commands applied per bus round trip."),
    lease_ms: int = typer.Option(5_000, "--lease-ms", envvar="PMARKET_ENGINE_LEASE_MS",
                                 min=100, help="How long the shard's lease outlives this "
                                 "engine's last write: a standby engine of the shard "
                                 "takes over that long after this one dies."),
    log_level: str = typer.Option("info", help="Logging level."),
) -> None:
    """Run the matching engine of one shard: commands in, events and replies out.

    One engine writes a shard at a time; another started for the same shard stands by
    until the first stops (or dies and its lease expires), then takes over.
    """
    from pmarket.bus import LeaseLost, make_bus
    from pmarket.runtime.service import EngineService

    require_redis(redis_url)
    configure_logging(log_level)
    log = logging.getLogger(__name__)

    async def main(stop: asyncio.Event) -> None:
        bus = make_bus(redis_url, prefix=prefix, shard=shard)
        try:
            service = EngineService(bus, snapshot_dir=snapshot_dir, shard=shard,
                                    snapshot_every=snapshot_every,
                                    snapshot_interval_s=snapshot_interval,
                                    batch_size=batch_size, lease_ms=lease_ms)
            try:
                await service.run(stop)
            except LeaseLost as exc:
                log.error("engine %s: another engine took over this shard (%s); stopping "
                          "without writing anything more", shard, exc)
                raise typer.Exit(3) from None
            log.info("engine %s stopped at seq %d: %s", shard, service.engine.last_seq,
                     service.stats)
        finally:
            await bus.close()

    run_until_signal(main)
