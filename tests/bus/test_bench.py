"""bench_roundtrip measures real cycles and cleans up after itself."""

from __future__ import annotations

import pytest

from pmarket.bus import Bus
from pmarket.bus.bench import bench_roundtrip


@pytest.mark.parametrize("with_results", [False, True])
async def test_bench_roundtrip_completes_every_command(bus: Bus, with_results: bool):
    result = await bench_roundtrip(bus, 250, batch=100, with_results=with_results)

    assert (result.messages, result.batch, result.with_results) == (250, 100, with_results)
    assert result.seconds > 0
    assert result.per_second == pytest.approx(250 / result.seconds)
    assert result.us_per_message == pytest.approx(result.seconds * 1e6 / 250)


async def test_bench_roundtrip_deletes_its_streams(bus: Bus):
    await bench_roundtrip(bus, 10, batch=3, with_results=True, shard="bench-t")

    for stream in (bus.commands_stream("bench-t"), bus.events_stream("bench-t")):
        assert await bus.length(stream) == 0
        assert await bus.groups(stream) == []


async def test_bench_roundtrip_rejects_an_empty_run(bus: Bus):
    with pytest.raises(ValueError):
        await bench_roundtrip(bus, 0)
