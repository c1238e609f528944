"""Load test: N concurrent gradio_client users, each sending M requests to a served app.

    python -m eval.loadtest --profile embedded --users 20 --requests 50 --out reports/load
    python -m eval.loadtest --profile fast --replicas 2 ...   # the server on 2 Ray Serve replicas

Starts ``python -m serve`` in a subprocess on a free loopback port, waits until the models are
loaded, sends one warm-up request, reads the resident memory of the server and its child processes (Ray replicas included), runs the users (9 of 10
requests are /answer with one of the example questions on the seed article, 1 in 10 is
/summarize), reads the memory again and reports errors (split into clear over-limit answers and
others), latency p50/p95 and memory growth.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from eval.metrics import percentiles
from eval.sets import seed_article

QUESTIONS = ["What gifts were exchanged?", "What did Putin give Kim?", "Who is Kim's powerful sister?",
             "Where was Putin expected to go next?", "How much did the limo cost?"]
OVER_LIMIT = ("queue is full", "limit is", "Too many")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (with ``--replicas`` the models live
    in Ray worker processes under the server)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += rss_mb(p)
        except OSError:
            continue
        todo.extend(children.get(p, []))
    return total


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    import urllib.request
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url + "config", timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError("server did not start")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.loadtest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="embedded")
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--requests", type=int, default=50, help="requests per user")
    p.add_argument("--replicas", type=int, default=0,
                   help="serve with this many Ray Serve replicas (python -m serve --replicas N); 0 = in-process")
    p.add_argument("--out", default="reports/load")
    args = p.parse_args(argv)
    from gradio_client import Client
    from tqdm import tqdm

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    # MALLOC_ARENA_MAX=2 as `make run` sets it: fewer glibc arenas for the worker threads
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.setdefault("MALLOC_ARENA_MAX", "2")
    cmd = [sys.executable, "-m", "serve", "--profile", args.profile, "--port", str(port)]
    if args.replicas:
        cmd += ["--replicas", str(args.replicas)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(url, server)
        article = seed_article()
        Client(url, verbose=False).predict(article, QUESTIONS[0], 3, api_name="/answer")
        rss_before = tree_rss_mb(server.pid)
        # a warm-up round: every user once, both endpoints, concurrently, so that first-use
        # allocations (worker threads, allocator pools) are not counted as growth under load
        def warm_up(u: int) -> None:
            client = Client(url, verbose=False)
            if u % 2:
                client.predict(article, 60, api_name="/summarize")
            else:
                client.predict(article, QUESTIONS[u % len(QUESTIONS)], 3, api_name="/answer")

        warm = [threading.Thread(target=warm_up, args=(u,)) for u in range(args.users)]
        for t in warm:
            t.start()
        for t in warm:
            t.join()
        rss_warm = tree_rss_mb(server.pid)
        lat: list[float] = []
        errors: list[str] = []
        over: list[str] = []
        lock = threading.Lock()
        bar = tqdm(total=args.users * args.requests, desc="requests", unit="req")

        def user(u: int) -> None:
            c = Client(url, verbose=False)
            for i in range(args.requests):
                t = time.perf_counter()
                try:
                    if (u + i) % 10 == 9:
                        c.predict(article, 60, api_name="/summarize")
                    else:
                        c.predict(article, QUESTIONS[(u + i) % len(QUESTIONS)], 3, api_name="/answer")
                    with lock:
                        lat.append(time.perf_counter() - t)
                except Exception as exc:  # counted, the user goes on
                    msg = f"{type(exc).__name__}: {exc}"
                    with lock:
                        (over if any(k in msg for k in OVER_LIMIT) else errors).append(msg)
                with lock:
                    bar.update(1)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=user, args=(u,)) for u in range(args.users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        bar.close()
        rss_after = tree_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = {"profile": args.profile, "replicas": args.replicas, "users": args.users, "requests": args.users * args.requests,
              "ok": len(lat), "over_limit": len(over), "errors": len(errors), "error_samples": errors[:5],
              "wall_s": round(wall, 1), "throughput_rps": round(len(lat) / wall, 2),
              **{k: round(v, 1) for k, v in percentiles(lat).items()},
              "server_rss_before_mb": round(rss_before, 1), "server_rss_warm_mb": round(rss_warm, 1),
              "server_rss_after_mb": round(rss_after, 1),
              "rss_growth_pct": round(100 * (rss_after - rss_before) / rss_before, 1),
              "rss_growth_after_warmup_pct": round(100 * (rss_after - rss_warm) / rss_warm, 1)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(json.dumps(report, indent=1))
    for k, v in report.items():
        print(f"{k:>22}: {v}")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
