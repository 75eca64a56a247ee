"""What the risk backtest scenarios share: the scripted strategy's helpers, the constant
latencies (feed 10, order 20, response 30 ns) and small readers of a run."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sim"))

from scripted import T0

from framework.events import CommandKind, RejectReason, Side

LAT = (10, 20, 30)
BUY, SELL = Side.BUY, Side.SELL
R = RejectReason


def t(offset: int) -> int:
    """A time ``offset`` ns after ``T0``."""
    return T0 + offset


def alerts(run) -> list[tuple[int, int]]:
    """(client order id, reason) of every order the pipeline refused, in order."""
    return [(int(c["client_order_id"]), int(c["reason"])) for c in run.cmds(CommandKind.ALERT)]
