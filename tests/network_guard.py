"""Run ``python -m serve`` with every name look-up and connection recorded and those that would
leave the machine refused (the tests' check that offline profiles stay offline):

    python -m tests.network_guard LOG -- --profile embedded --port 7861

Writes one line to LOG for each look-up of a name other than a loopback one and each connection
to an address other than loopback, before refusing it."""
from __future__ import annotations

import ipaddress
import runpy
import socket
import sys

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}


def _is_loopback(host) -> bool:
    host = str(host).strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def install(log_path: str) -> None:
    def record(what: str) -> None:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(what + "\n")

    real_getaddrinfo, real_connect, real_connect_ex = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_loopback(host if isinstance(host, str) else host.decode()):
            record(f"resolve {host}")
            raise socket.gaierror(socket.EAI_NONAME, "network access refused by tests.network_guard")
        return real_getaddrinfo(host, *args, **kwargs)

    def allowed(sock, address) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return True                                   # unix sockets stay on the machine
        if _is_loopback(address[0]):
            return True
        record(f"connect {address}")
        return False

    def connect(sock, address):
        if not allowed(sock, address):
            raise OSError("network access refused by tests.network_guard")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not allowed(sock, address):
            return 111
        return real_connect_ex(sock, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex


if __name__ == "__main__":
    log, sep, *serve_args = sys.argv[1:]
    install(log)
    sys.argv = ["python -m serve", *serve_args]
    runpy.run_module("serve", run_name="__main__", alter_sys=True)
