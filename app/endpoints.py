"""Where the processes of a live session find each other: ZeroMQ endpoints and publisher ids.

One place decides every address, so the engine, the market-data service, the gateway
and the simulated venue server agree without being told twice. ``ipc`` puts Unix
sockets in one folder (one host: the fastest); ``tcp`` uses consecutive ports from a
base on the configured host (processes on several hosts).

Publisher and sender ids are fixed per role: a subscriber knows which publisher a
frame is from, and a restarted process is a new epoch of the same id.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from live.transport import Source

SIM_MARKET_DATA, SIM_REPORTS = 1, 2
"""Publisher ids of the simulated venue server: market data, and reports (and, in lockstep, timers)."""
MARKET_DATA_SERVICE, GATEWAY_REPORTS = 11, 12
"""Publisher ids of the multi-process topology's market-data service and venue gateway."""
ENGINE_SENDER, GATEWAY_SENDER = 21, 22
"""Command sender ids: the engine, and the gateway forwarding to the simulated venue."""

_NAMES = (
    "sim_md", "sim_md_replay", "sim_reports", "sim_reports_replay", "sim_commands",
    "md", "md_replay", "gw_commands", "gw_reports", "gw_reports_replay",
)


@dataclass(frozen=True)
class Endpoints:
    """Every endpoint of a session, by role (``bind`` and ``connect`` strings are the same)."""

    sim_md: str
    sim_md_replay: str
    sim_reports: str
    sim_reports_replay: str
    sim_commands: str
    md: str
    md_replay: str
    gw_commands: str
    gw_reports: str
    gw_reports_replay: str

    @classmethod
    def ipc(cls, folder: str | Path | None = None) -> Endpoints:
        """Unix sockets in ``folder`` (a new private one under the temp dir if None: socket
        paths must stay under ~100 bytes, which a deep run directory may not)."""
        folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="pt-"))
        folder.mkdir(parents=True, exist_ok=True)
        longest = str(folder / "gw_reports_replay.sock")
        if len(longest) > 100:
            raise ValueError(f"live.ipc_dir: {folder} is too long for Unix socket paths (max ~100 bytes)")
        return cls(**{n: f"ipc://{folder}/{n}.sock" for n in _NAMES})

    @classmethod
    def tcp(cls, host: str, base_port: int) -> Endpoints:
        """Ports ``base_port`` .. ``base_port + 9`` on ``host``."""
        if not 1024 <= base_port <= 65535 - len(_NAMES):
            raise ValueError(f"live.tcp_base_port: {base_port} leaves no room for {len(_NAMES)} ports")
        return cls(**{n: f"tcp://{host}:{base_port + k}" for k, n in enumerate(_NAMES)})

    def as_dict(self) -> dict[str, str]:
        """The endpoints by name (for the child processes' configuration)."""
        return {n: getattr(self, n) for n in _NAMES}

    # -- who subscribes to what ----------------------------------------------------------------

    def sim_market_data(self) -> Source:
        return Source(SIM_MARKET_DATA, self.sim_md, self.sim_md_replay)

    def sim_reports_source(self) -> Source:
        return Source(SIM_REPORTS, self.sim_reports, self.sim_reports_replay)

    def market_data_service(self) -> Source:
        return Source(MARKET_DATA_SERVICE, self.md, self.md_replay)

    def gateway_reports(self) -> Source:
        return Source(GATEWAY_REPORTS, self.gw_reports, self.gw_reports_replay)


def ipc_files(endpoints: Endpoints) -> list[Path]:
    """The socket files of ``ipc`` endpoints (to remove after a session)."""
    return [Path(e[len("ipc://"):]) for e in endpoints.as_dict().values() if e.startswith("ipc://")]


def remove_ipc_files(endpoints: Endpoints) -> None:
    """Remove the socket files, and their folder if it is left empty."""
    files = ipc_files(endpoints)
    for f in files:
        f.unlink(missing_ok=True)
    if files:
        try:
            os.rmdir(files[0].parent)
        except OSError:
            pass
