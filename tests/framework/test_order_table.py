"""The order table's routing rule: which commands go to a venue."""

from framework.events import VENUE_COMMAND_KINDS, CommandKind, EventKind
from framework.order_table import is_venue_command


def test_compiled_rule_equals_the_python_set() -> None:
    """The backtest loop and the live fast path route by the kernel, the runtime and the
    Binance adapter by the set: a kind added to one and not the other would send a
    command to the venue in one mode and not in the other."""
    kinds = set(CommandKind) | set(EventKind) | {0, -1, 255}
    for kind in kinds:
        assert is_venue_command(kind) == (kind in VENUE_COMMAND_KINDS), kind
    assert VENUE_COMMAND_KINDS == {CommandKind.SUBMIT, CommandKind.CANCEL, CommandKind.MODIFY, CommandKind.QUERY}
