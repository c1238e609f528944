"""Helpers only the tests use."""
from __future__ import annotations

from eval.loadtest import free_port  # noqa: F401  (the load test's own helper: a free loopback port)
from serve.screenshot import CHROMIUM, CHROMIUM_ARGS  # noqa: F401  (Debian's chromium, never a downloaded one)
