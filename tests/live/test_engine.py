"""The engine: what it admits to ``step``, how it stamps time, what it journals.

The scripted strategy (tests/sim/scripted.py) acts on given inputs; the engine must
feed exactly the good records of every batch, in order, and nothing else.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted import T0, make_quotes, make_script, make_trades, merge, new_state, on_event, submit
from structlog.testing import capture_logs

from framework.events import EVENT_DTYPE, CommandKind, EventKind, Side, to_fixed
from framework.journal import JournalWriter, journal_commands, read_journal
from framework.state import Counter, PipelineSpec, allocate, events_stepped
from framework.stepper import Stepper
from live.engine import ALLOWED_KINDS, Engine, Origin

BUY = Side.BUY


def new_engine(script=None, *, lockstep=False, journal=None, n_instruments=2, n_venues=1, batch=64) -> Engine:
    plan = make_script(script or [])
    p = allocate(PipelineSpec(n_instruments=n_instruments, max_order_size=(to_fixed(10),),
                              max_position=(to_fixed(10),), price_collar=(0.5,)))
    return Engine(Stepper(p, on_event, plan, new_state(len(plan)), batch=batch), n_venues=n_venues,
                  journal=journal, lockstep=lockstep)


def quotes(n: int, start: int = 1000) -> np.ndarray:
    return make_quotes([(T0 + start + 10 * k, 99.0, 1.0, 101.0, 1.0) for k in range(n)])


def test_good_inputs_are_stamped_stepped_and_turned_into_commands():
    engine = new_engine([submit(BUY, 1, 100, at=1)])
    assert len(engine.process(quotes(1), Origin.MARKET_DATA, now_ns=T0 + 5)) == 0
    commands = engine.process(quotes(1, start=2000), Origin.MARKET_DATA, now_ns=T0 + 7)
    kinds = list(commands["kind"])
    assert CommandKind.SUBMIT in kinds and engine.stepper.indexes[0] == 1
    submit_cmd = commands[kinds.index(CommandKind.SUBMIT)]
    assert submit_cmd["ts_event"] == T0 + 7  # decided at the engine's clock, not the venue's time
    assert engine.counters["inputs"] == 2 and engine.last_ts == T0 + 7


def test_a_batch_of_another_dtype_is_refused_not_fed():
    engine = new_engine()
    with capture_logs() as logs:
        commands = engine.process(np.zeros(3, np.int64), Origin.VENUE, now_ns=T0)
    assert len(commands) == 0 and engine.counters["rejected_bad_dtype"] == 3 and engine.counters["inputs"] == 0
    assert logs[0]["reason"] == "bad_dtype"


def test_the_clock_never_goes_back_even_when_the_wall_clock_does():
    engine = new_engine()
    engine.process(quotes(1), Origin.MARKET_DATA, now_ns=T0 + 100)
    engine.process(quotes(1), Origin.MARKET_DATA, now_ns=T0 + 50)  # NTP stepped the clock back
    assert engine.last_ts == T0 + 100
    assert events_stepped(engine.p.counters) == 2  # both fed
    assert engine.p.counters[Counter.OUT_OF_ORDER] == 0  # none refused by step as out of order


def _bad_batch() -> tuple[np.ndarray, dict[str, int]]:
    good = quotes(3)
    wrong_instrument = quotes(1)
    wrong_instrument["instrument_id"] = 7
    negative = make_trades([(T0 + 1500, 100.0, 1.0)])
    negative["size"] = -1
    wrong_venue = quotes(1)
    wrong_venue["venue_id"] = 3
    report = np.zeros(1, EVENT_DTYPE)
    report["kind"] = EventKind.FILLED
    batch = merge(good[:1], wrong_instrument, good[1:2], negative, wrong_venue, report, good[2:])
    return batch, {"rejected_unknown_instrument": 1, "rejected_bad_values": 1, "rejected_unknown_venue": 1,
                   "rejected_kind_not_allowed": 1}


def test_malformed_records_are_rejected_counted_and_logged_and_the_rest_goes_on():
    engine = new_engine([submit(BUY, 1, 100, at=2)])
    batch, expected = _bad_batch()
    with capture_logs() as logs:
        commands = engine.process(batch, Origin.MARKET_DATA, now_ns=T0 + 9)
    assert engine.counters["inputs"] == 3
    for name, n in expected.items():
        assert engine.counters[name] == n, name
    reasons = sorted(e["reason"] for e in logs if e["event"] == "input rejected")
    assert reasons == sorted(name.removeprefix("rejected_") for name in expected)
    assert all("head_hex" in e and "detail" in e for e in logs if e["event"] == "input rejected")
    # Exactly as if only the three good quotes had come: the third input is the submit's.
    reference = new_engine([submit(BUY, 1, 100, at=2)])
    again = reference.process(quotes(3), Origin.MARKET_DATA, now_ns=T0 + 9)
    assert commands.tobytes() == again.tobytes()


@pytest.mark.parametrize("origin", list(Origin))
def test_each_origin_may_send_only_its_own_kinds(origin):
    engine = new_engine()
    events = np.zeros(len(EventKind), EVENT_DTYPE)
    events["kind"] = list(EventKind)
    events["price"] = events["size"] = events["bid_price"] = events["ask_price"] = to_fixed(1)
    events["low"] = events["high"] = to_fixed(1)
    engine.process(events, origin, now_ns=T0)
    assert engine.counters["inputs"] == len(ALLOWED_KINDS[origin])
    assert engine.counters["rejected_kind_not_allowed"] == len(EventKind) - len(ALLOWED_KINDS[origin])


def test_in_lockstep_times_are_kept_and_the_venue_may_send_timers_but_never_backwards():
    engine = new_engine(lockstep=True)
    events = quotes(3)
    engine.process(events, Origin.MARKET_DATA)
    assert engine.last_ts == int(events["ts_recv"][-1])  # kept as received (make_quotes stamps ts_recv)
    timer = np.zeros(2, EVENT_DTYPE)
    timer["kind"] = EventKind.TIMER
    timer["ts_event"] = timer["ts_recv"] = [engine.last_ts + 5, engine.last_ts - 1]
    with capture_logs():
        engine.process(timer, Origin.VENUE)
    assert engine.counters["inputs"] == 4 and engine.counters["rejected_out_of_order"] == 1


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(min_size=64, max_size=64 * 12), origin=st.sampled_from(list(Origin)),
       lockstep=st.booleans())
def test_no_bytes_crash_the_engine_and_only_lawful_records_reach_step(raw, origin, lockstep):
    events = np.frombuffer(raw[: len(raw) // 64 * 64], EVENT_DTYPE)
    engine = ENGINES[lockstep]
    before = engine.counters["inputs"]
    engine.last_ts = 0
    with capture_logs():
        engine.process(events, origin, now_ns=T0)
    fed = engine.stepper.inputs[: engine.counters["inputs"] - before]
    assert np.isin(fed["kind"], ALLOWED_KINDS[origin] + ((EventKind.TIMER,) if lockstep else ())).all()
    assert ((fed["instrument_id"] >= 0) & (fed["instrument_id"] < 2)).all() and (fed["venue_id"] < 1).all()


ENGINES = {False: new_engine(), True: new_engine(lockstep=True)}


def test_the_journal_holds_exactly_what_was_fed_and_produced(tmp_path):
    path = tmp_path / "journal.bin"
    engine = new_engine([submit(BUY, 1, 100, at=1), submit(BUY, 2, 99, at=4)],
                        journal=JournalWriter(path, {"mode": "test"}, in_place=True), batch=2)
    batch, _ = _bad_batch()
    fed, produced = [], []
    with capture_logs():
        for k in range(0, len(batch), 3):
            commands = engine.process(batch[k:k + 3], Origin.MARKET_DATA, now_ns=T0 + k)
            produced.append(journal_commands(engine.stepper.indexes, commands))
            fed.append(engine.stepper.inputs[: engine.counters["inputs"] - sum(len(f) for f in fed)].copy())
        engine.flush_journal()
        _, ev_mid, _ = read_journal(path)  # readable while the engine runs
        digest = engine.close_journal()
    assert len(ev_mid) == engine.counters["inputs"] == 3
    _, events, commands = read_journal(path)
    assert events["kind"].tolist() == [EventKind.QUOTE] * 3
    assert commands.tobytes() == np.concatenate(produced).tobytes()
    assert digest and commands["input_index"].max() < len(events)


def test_the_kill_switch_cancels_every_working_order_through_step():
    engine = new_engine([submit(BUY, 1, 100, at=0), submit(BUY, 1, 99, at=0)])
    engine.process(quotes(1), Origin.MARKET_DATA, now_ns=T0)
    assert engine.open_orders == 2
    commands = engine.kill_switch(T0 + 10)
    cancels = commands[commands["kind"] == CommandKind.CANCEL]
    assert len(cancels) == 2 and engine.counters["inputs"] == 2
