"""Feed inputs to ``step`` from Python: the live engine's and the replay's way in.

The backtest loop calls ``step`` from compiled code. Everything else that runs the
pipeline (the live engine, once per message; the replay of a journal; a remote
pipeline in lockstep tests) hands it a batch of input records from Python, and gets
back the commands each input produced. That is ``step_batch``, compiled once per
strategy like the loop.

A ``Stepper``'s arguments never change type (the same arrays, mutated in place), so
it calls the compiled overload's entry point directly (``framework.jit.entry_point``):
half a microsecond a call instead of the dispatcher's ten, the difference between
meeting the engine's latency budget and not.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit

from framework.events import COMMAND_DTYPE, EVENT_DTYPE, concat_records, copy_records, raw_copy, records
from framework.jit import KERNEL, cache_by_source, entry_point
from framework.state import Pipeline
from framework.step import step


@njit(**KERNEL)
def step_batch(p, events, start: int, stop: int, out, commands, indexes, n_commands: int, first_index: int,
                on_event, params, state) -> tuple[int, int]:
    """Feed ``events[start:stop]`` to ``step``; append its commands to ``commands`` and the
    index of the input each came from (counted from ``first_index``) to ``indexes``.

    Stops early, before an input whose commands might not fit. Returns the index of the
    next input to feed and the number of commands held."""
    room = commands.shape[0] - out.shape[0]
    i = start
    while i < stop and n_commands <= room:
        n_out = step(p, events[i], out, on_event, params, state)
        for k in range(n_out):
            commands[n_commands] = out[k]
            indexes[n_commands] = first_index + i
            n_commands += 1
        i += 1
    return i, n_commands


class Stepper:
    """A pipeline and a strategy, fed batches of inputs from Python.

    ``feed(events)`` runs every input through ``step`` in order and returns the commands
    they produced as contiguous ``COMMAND_DTYPE`` records (ready for the wire), with
    ``indexes`` saying which input produced each (counted from ``first_index``); both
    are views valid until the next call. The inputs are copied into a buffer of the
    stepper's own (``inputs``), so a read-only view of received bytes can be fed; a
    caller that fills ``inputs`` itself calls ``step_inputs(n)`` instead.
    """

    def __init__(self, p: Pipeline, on_event: Callable, params: np.ndarray, state: object, *,
                 batch: int = 1024, first_index: int = 0) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.p = p
        self.on_event = cache_by_source(on_event)
        self.params = params
        self.state = state
        self.n_inputs = first_index
        """Inputs fed so far (the index the next one will get)."""
        self.inputs = records(batch, EVENT_DTYPE)
        """The buffer ``step_inputs`` feeds from."""
        self.indexes = np.zeros(0, np.int64)
        """The input index of each command the last call returned."""
        # step_batch's buffers: one input's commands, then every command of a batch and its input
        self.out = records(len(p.orders) + len(p.intents) + 1, COMMAND_DTYPE)
        self.commands = records(4 * len(self.out), COMMAND_DTYPE)
        self.command_indexes = np.zeros(len(self.commands), np.int64)
        self._call = entry_point(step_batch, self._args(0, 0))

    def _args(self, stop: int, n_commands: int, start: int = 0) -> tuple:
        return (self.p, self.inputs, start, stop, self.out, self.commands, self.command_indexes, n_commands,
                self.n_inputs, self.on_event, self.params, self.state)

    def feed(self, events: np.ndarray) -> np.ndarray:
        """Step every record of ``events`` (``EVENT_DTYPE``) in order; return their commands."""
        if events.dtype != EVENT_DTYPE:
            raise TypeError(f"inputs must be EVENT_DTYPE records, got {events.dtype}")
        batch = len(self.inputs)
        if len(events) <= batch:
            copy_records(self.inputs, events)
            return self.step_inputs(len(events))
        commands, indexes = [], []
        for first in range(0, len(events), batch):
            commands.append(raw_copy(self.feed(events[first:first + batch])))
            indexes.append(self.indexes.copy())
        self.indexes = np.concatenate(indexes)
        return concat_records(commands, COMMAND_DTYPE)

    def step_inputs(self, n: int) -> np.ndarray:
        """Step ``inputs[:n]`` in order; return their commands (a view valid until the next call)."""
        commands: list[np.ndarray] = []
        indexes: list[np.ndarray] = []
        i = 0
        while i < n:
            i, n_commands = self._call(*self._args(n, 0, i))
            if n_commands:
                if i == n and not commands:  # all of them in one go: the common case, no copy
                    self.n_inputs += n
                    self.indexes = self.command_indexes[:n_commands]
                    return self.commands[:n_commands]
                commands.append(raw_copy(self.commands[:n_commands]))
                indexes.append(self.command_indexes[:n_commands].copy())
        self.n_inputs += n
        if not commands:
            self.indexes = self.command_indexes[:0]
            return self.commands[:0]
        self.indexes = np.concatenate(indexes)
        return concat_records(commands, COMMAND_DTYPE)
