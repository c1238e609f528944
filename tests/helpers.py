"""Helpers only the tests use."""
from __future__ import annotations

import socket

from serve.screenshot import CHROMIUM, CHROMIUM_ARGS  # noqa: F401  (Debian's chromium, never a downloaded one)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
