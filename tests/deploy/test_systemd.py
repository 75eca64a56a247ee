"""The systemd unit that runs ``python run.py mode=live``: valid for systemd, and stopping the way the engine needs.

``systemd-analyze verify`` checks the unit (with the interpreter path pointed at this
checkout's, since /opt/pipeline-trader does not exist here); the rest reads it as an
INI file and checks what the engine's shutdown relies on.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from framework.config import LiveConfig

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "pipeline-trader.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(UNIT)
    return parser


def test_systemd_accepts_the_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/pipeline-trader/.venv/bin/python", sys.executable))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def test_the_unit_runs_live_mode_and_stops_it_with_sigterm_in_time():
    service = _unit()["Service"]
    assert "run.py mode=live" in service["ExecStart"]
    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"  # SIGTERM to the supervisor only: it stops its processes in order
    assert float(service["TimeoutStopSec"]) >= LiveConfig().shutdown_timeout_s + 30
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"].startswith("/etc/")  # credentials outside the repository
    assert "PIPELINE_TRADER_CACHE=/var/lib/" in service["Environment"]  # the compiled code's cache is writable


def test_no_secret_is_in_the_unit():
    text = UNIT.read_text().lower()
    assert "api_key=" not in text and "secret=" not in text
