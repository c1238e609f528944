"""Corpus mode under a failure: kill one Ray Data actor mid-run and check that no row is lost or
written twice, and that the answers equal an in-process run's.

    python -m serve.corpus_faults --articles A.jsonl --questions Q.txt --reference inproc.jsonl \\
        --profile fast --kill-after 200 --out reports/corpus_faults

Runs ``serve.ray_batch.run_corpus_ray`` (local Ray, 2 single-thread actors) into a fresh file;
a watcher thread kills one engine actor's process (SIGKILL, as an out-of-memory killer or a lost
node would) once ``--kill-after`` rows are written. Ray restarts the actor (Ray Data actors are
created with ``max_restarts=-1``) and retries the batch it held; the driver writes a batch's rows
only when it comes back, so the retried batch is written once. The report counts rows, distinct
(id, question) pairs and pairs whose answer differs from ``--reference`` (an in-process run of the
same corpus, ``python -m serve batch`` without ``--ray``).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path


def engine_actor_pids() -> list[int]:
    """Process ids of the live Ray Data map actors: Ray titles a worker process after its actor
    (``ray::MapWorker(MapBatches(CorpusAnswerer))``)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::") and "MapWorker" in title:
            pids.append(int(cmdline.parent.name))
    return sorted(pids)


def count_rows(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def kill_one_actor_after(out: Path, rows: int, log: dict, timeout: float = 600) -> None:
    """Wait until ``out`` holds ``rows`` rows, then SIGKILL one engine actor."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if count_rows(out) >= rows:
            pids = engine_actor_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                log.update(killed_pid=pids[0], killed_at_rows=count_rows(out),
                           killed_at_s=round(time.time() - t0, 1), live_actors_before=len(pids))
                return
        time.sleep(0.2)


def pairs(path: Path) -> list[tuple]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [(r["id"], r["question"], r["answer"], r["start"], r["end"], r["error"]) for r in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m serve.corpus_faults", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--articles", required=True)
    p.add_argument("--questions", required=True)
    p.add_argument("--reference", required=True, help="answers.jsonl of an in-process run of the same corpus")
    p.add_argument("--profile", default="fast")
    p.add_argument("--kill-after", type=int, default=200, help="rows written before one actor is killed")
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--out", default="reports/corpus_faults")
    args = p.parse_args(argv)
    from serve.ray_batch import connect, run_corpus_ray
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    answers = out_dir / "answers.jsonl"
    answers.unlink(missing_ok=True)
    connect("local", cpus=args.actors)
    kill: dict = {}
    watcher = threading.Thread(target=kill_one_actor_after, args=(answers, args.kill_after, kill), daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    counts = run_corpus_ray(args.profile, args.articles, args.questions, answers, "local", actors=args.actors)
    wall = time.perf_counter() - t0
    got, want = pairs(answers), pairs(Path(args.reference))
    distinct = {g[:2] for g in got}
    report = {"profile": args.profile, "actors": args.actors, **kill, "wall_s": round(wall, 1), **counts,
              "rows_written": len(got), "distinct_pairs": len(distinct), "reference_pairs": len(want),
              "missing_pairs": len({w[:2] for w in want} - distinct),
              "duplicated_rows": len(got) - len(distinct),
              "same_answers": sum(1 for g in set(got) & set(want)),
              "killed": bool(kill)}
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    for k, v in report.items():
        print(f"{k:>20}: {v}")
    ok = kill and report["missing_pairs"] == 0 and report["duplicated_rows"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
