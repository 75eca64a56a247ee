"""Binance API credentials: loaded from the environment or a private secrets file, never shown.

A ``Credentials`` holds the API key and secret and gives them out only through
``api_key`` / ``api_secret`` (for the ccxt client). Its ``repr`` and ``str`` name where
the values came from, never the values, so the object can be logged, put in a config
dump or an exception message safely. ``redact(text)`` blanks both values out of any
text (a venue's error message, a log line) before it leaves the adapter.

Loading errors (``CredentialsError``) name the variables or the file that are missing or
unsafe, never a value: a secrets file that group or others can read is refused, as ssh
refuses a private key with loose permissions.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path

_MASK = "***"
_UNSAFE_MODE = stat.S_IRWXG | stat.S_IRWXO


class CredentialsError(ValueError):
    """Credentials are missing, unreadable or unsafe; the message names where, never the values."""


class Credentials:
    """An API key and secret, masked everywhere but in the two accessors."""

    __slots__ = ("_key", "_secret", "source")

    def __init__(self, api_key: str, api_secret: str, source: str = "given") -> None:
        """``source`` says where the values came from (shown by ``repr``), e.g. ``env:BINANCE_API_KEY``."""
        if not isinstance(api_key, str) or not api_key.strip():
            raise CredentialsError(f"the API key from {source} is empty")
        if not isinstance(api_secret, str) or not api_secret.strip():
            raise CredentialsError(f"the API secret from {source} is empty")
        self._key = api_key.strip()
        self._secret = api_secret.strip()
        self.source = source

    @property
    def api_key(self) -> str:
        return self._key

    @property
    def api_secret(self) -> str:
        return self._secret

    def __repr__(self) -> str:
        return f"Credentials(api_key={_MASK!r}, api_secret={_MASK!r}, source={self.source!r})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("Credentials cannot be pickled: the secret must not leave the process")

    def redact(self, text: str) -> str:
        """Return ``text`` with the key and the secret replaced by ``***``."""
        return text.replace(self._secret, _MASK).replace(self._key, _MASK)

    @classmethod
    def from_env(
        cls,
        key_var: str = "BINANCE_API_KEY",
        secret_var: str = "BINANCE_API_SECRET",
        environ: Mapping[str, str] | None = None,
    ) -> Credentials:
        """Read the key and secret from environment variables ``key_var`` and ``secret_var``."""
        env = os.environ if environ is None else environ
        missing = [name for name in (key_var, secret_var) if not env.get(name, "").strip()]
        if missing:
            raise CredentialsError(
                f"Binance credentials not found: set the environment variable(s) {', '.join(missing)} "
                f"(or load them from a secrets file)"
            )
        return cls(env[key_var], env[secret_var], source=f"env:{key_var},{secret_var}")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Credentials:
        """Read ``{"api_key": ..., "api_secret": ...}`` from a JSON file only its owner can read."""
        path = Path(path)
        try:
            with open(path, encoding="utf-8") as fh:
                mode = os.fstat(fh.fileno()).st_mode  # of the file opened, not of whatever the path names later
                if mode & _UNSAFE_MODE:
                    raise CredentialsError(
                        f"secrets file {path} has mode {stat.S_IMODE(mode):04o}: it must not be accessible by group "
                        f"or others (chmod 600 {path})"
                    )
                text = fh.read()
        except OSError as exc:
            raise CredentialsError(f"cannot read secrets file {path}: {exc.strerror or type(exc).__name__}") from None
        return cls._parse_file(path, text)

    @classmethod
    def _parse_file(cls, path: Path, text: str) -> Credentials:
        try:
            data = json.loads(text)
        except ValueError:
            raise CredentialsError(f"secrets file {path} is not valid JSON") from None  # the text may hold the secret
        if not isinstance(data, dict):
            raise CredentialsError(f'secrets file {path} must hold a JSON object {{"api_key": ..., "api_secret": ...}}')
        missing = [k for k in ("api_key", "api_secret") if not isinstance(data.get(k), str) or not data[k].strip()]
        if missing:
            raise CredentialsError(f"secrets file {path} has no non-empty string {', '.join(missing)}")
        return cls(data["api_key"], data["api_secret"], source=f"file:{path}")
