"""Nothing leaves the machine on the offline profiles: the real server on `embedded`, run under
``tests.network_guard``, summarizes and answers a pasted article without resolving a name or
opening a connection other than to loopback (no hub look-up, no Gradio analytics)."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_port

REPO = Path(__file__).resolve().parent.parent


def test_the_guard_refuses_and_records_what_would_leave(tmp_path):
    """The guard itself: a name look-up and a connection out are refused and written down before
    any packet leaves; loopback passes."""
    import socket

    from tests import network_guard
    log = tmp_path / "net.log"
    saved = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex
    try:
        network_guard.install(str(log))
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("huggingface.co", 443)
        s = socket.socket()
        with pytest.raises(OSError):
            s.connect(("203.0.113.9", 443))        # TEST-NET-3: never routed, and never tried
        s.close()
        assert socket.getaddrinfo("localhost", 80)
    finally:
        socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex = saved
    assert log.read_text().splitlines() == ["resolve huggingface.co", "connect ('203.0.113.9', 443)"]


def test_embedded_server_summarizes_and_answers_without_leaving_the_machine(tmp_path, seed_article):
    from gradio_client import Client
    log = tmp_path / "net.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "GRADIO_ANALYTICS_ENABLED")}
    server = subprocess.Popen([sys.executable, "-m", "tests.network_guard", str(log), "--", "--profile", "embedded",
                               "--port", str(port)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 300
        client = None
        while client is None and time.time() < deadline and server.poll() is None:
            try:
                client = Client(url, verbose=False)
            except Exception:
                time.sleep(2)
        assert client is not None, "the server did not start"
        s = client.predict(seed_article, 60, api_name="/summarize")
        r = client.predict(seed_article, "What did Putin give Kim?", 3, api_name="/answer")
        assert s["summary"] and r[0]["answer"]
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    refused = log.read_text().splitlines() if log.exists() else []
    assert refused == [], f"the server tried to reach: {refused}\n{out[-2000:]}"
    assert "Running on local URL" in out or "127.0.0.1" in out
