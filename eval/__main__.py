"""``python -m eval --profile embedded --set seed --out DIR``

Scores one or more profiles (``--profiles embedded,hub``) on a QA set (seed, xquad, xquad-doc,
xquad-long, xquad-swapped, xquad-foreign, squad-heldout, multispan, seed-lists, or a SQuAD JSON path) or a summarization
set (seed-summary, cnndm, bbc, xsum, or a JSONL path), prints a table and writes DIR/rows.json,
DIR/totals.json, DIR/summary.md and DIR/chart.png. ``--every 10`` scores every tenth item,
``--limit N`` the first N."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from eval.report import LIST_COLS, QA_COLS, SUM_COLS, markdown_table, write_report
from eval.runner import run_qa, run_summaries, summarize_qa, summarize_summaries
from eval.sets import is_summary_set, load_qa_set, load_summary_set
from models.engine import get_engine


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default=None, help="one profile (name or YAML path)")
    p.add_argument("--profiles", default=None, help="comma-separated profiles, compared side by side")
    p.add_argument("--set", default="seed", dest="set_name")
    p.add_argument("--limit", type=int, default=0, help="only the first N questions / articles")
    p.add_argument("--every", type=int, default=1,
                   help="only every K-th question / article (a sample across the whole set), before --limit")
    p.add_argument("--out", default=None, help="report folder (default reports/<set>)")
    p.add_argument("--one-by-one", action="store_true", help="ask questions one at a time, not batched per article")
    args = p.parse_args(argv)
    if args.every < 1:
        print("error: --every takes a whole number from 1", file=sys.stderr)
        return 2
    profiles = (args.profiles or args.profile or "embedded").split(",")
    out = Path(args.out or f"reports/{Path(args.set_name).stem}")
    summary = is_summary_set(args.set_name)
    try:
        items = load_summary_set(args.set_name) if summary else load_qa_set(args.set_name)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    items = items[:: args.every]
    if args.limit:
        items = items[: args.limit]
    rows, totals = {}, {}
    for prof in profiles:
        try:
            engine = get_engine(prof)
            engine.warm_up(qa=not summary, summarizer=summary)
        except Exception as exc:
            print(f"error: profile {prof}: {exc}", file=sys.stderr)
            return 2
        if summary:
            rows[prof] = run_summaries(engine, items, desc=prof)
            totals[prof] = summarize_summaries(rows[prof])
        else:
            rows[prof] = run_qa(engine, items, batch_by_context=not args.one_by_one, desc=prof)
            totals[prof] = summarize_qa(rows[prof])
    cmd = "python -m eval " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    lists = not summary and all(it.kind == "list" for it in items)
    if args.set_name == "multispan":       # the seed's list questions beside MultiSpanQA
        seed = load_qa_set("seed-lists")
        for prof in profiles:
            rows[f"{prof} (seed lists)"] = run_qa(get_engine(prof), seed, desc=f"{prof} seed lists")
            totals[f"{prof} (seed lists)"] = summarize_qa(rows[f"{prof} (seed lists)"])
            for r in rows[f"{prof} (seed lists)"]:
                print(f"{prof} | {r['question']} -> " + " | ".join(r["predictions"]))
    write_report(out, args.set_name, "summary" if summary else "qa", rows, totals, cmd,
                 LIST_COLS if lists else None)
    print(markdown_table(totals, SUM_COLS if summary else LIST_COLS if lists else QA_COLS))
    print(f"report: {out}/summary.md, rows.json, chart.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
