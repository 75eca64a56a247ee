"""``live.deadline.within``: a timed wait that never loses a cancel, unlike 3.11's ``wait_for``."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import pytest

from live.deadline import within

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.asyncio
async def test_the_result_comes_through_and_a_late_one_times_out() -> None:
    assert await within(asyncio.sleep(0, result="done"), 1.0) == "done"
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        await within(slow(), 0.01)
    assert started.is_set()


@pytest.mark.asyncio
@pytest.mark.parametrize("settle_s", [0.0, 0.001, 0.01, 0.03])
async def test_a_waiting_loop_stops_when_its_wake_and_its_cancel_come_together(settle_s: float) -> None:
    """The Binance poller's shape: wake-or-interval in a loop. The wake and the cancel land
    in one loop iteration; 3.11's ``wait_for`` returned the wake here and the loop ran on."""
    wake = asyncio.Event()
    rounds = 0

    async def poller() -> None:
        nonlocal rounds
        while True:
            with contextlib.suppress(TimeoutError):
                await within(wake.wait(), 0.02)
            wake.clear()
            rounds += 1

    task = asyncio.create_task(poller())
    await asyncio.sleep(settle_s)
    wake.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2.0)  # a lost cancel: the poller runs on
    if task not in done:
        task.cancel()  # the wake is spent now, so this cancel lands
        await asyncio.wait({task})
    assert task in done and task.cancelled(), f"the poller ran on for {rounds} rounds after its cancel"


def test_no_live_process_waits_with_wait_for() -> None:
    """Every timed wait of the live processes goes through ``within`` (the module docstring)."""
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("live", "app")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bwait_for\(", line) and not line.lstrip().startswith(("#", '"'))
    ]
    assert offenders == []
