"""Live processes run on uvloop where it is installed, and on asyncio's loop when told to."""

from __future__ import annotations

import asyncio

import pytest

from app import event_loop


async def _loop_package() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_uvloop_runs_the_session_where_installed():
    pytest.importorskip("uvloop", reason="uvloop is not installed here")
    assert event_loop.loop_name(True) == "uvloop"
    assert event_loop.run(_loop_package()) == "uvloop"


def test_asyncio_runs_it_when_told_to():
    assert event_loop.loop_name(False) == "asyncio"
    assert event_loop.run(_loop_package(), use_uvloop=False) == "asyncio"


def test_an_error_in_the_session_reaches_the_caller():
    async def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        event_loop.run(fail())


def test_the_simulated_venue_keeps_asyncio_whatever_is_configured():
    assert not event_loop.wants_uvloop("venue", True)
    assert event_loop.wants_uvloop("engine", True) and event_loop.wants_uvloop("market_data", True)
    assert not event_loop.wants_uvloop("engine", False)
