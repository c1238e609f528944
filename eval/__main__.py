"""``python -m eval --profile embedded --set seed --out DIR``

``--set html-extraction`` / ``pdf-extraction`` score how article text is read from web pages / PDFs
(eval/extraction.py). Otherwise: scores one or more profiles (``--profiles embedded,hub``) on a QA set (seed, xquad, xquad-doc,
xquad-long, xquad-swapped, xquad-foreign, squad-heldout, multispan, seed-lists, or a SQuAD JSON path) or a summarization
set (seed-summary, cnndm, bbc, xsum, or a JSONL path), prints a table and writes DIR/rows.json,
DIR/totals.json, DIR/summary.md and DIR/chart.png. ``--every 10`` scores every tenth item,
``--limit N`` the first N. ``--with SECTION.SETTING=VALUE`` (repeatable) scores a variant of the
profile(s) with that setting changed, as if its YAML said it (``--with qa.sentence_prior=0``): how
docs/decisions.md re-runs the evidence for a shipped setting."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from eval.report import LIST_COLS, QA_COLS, SUM_COLS, markdown_table, write_report
from eval.runner import run_qa, run_summaries, summarize_qa, summarize_summaries
from eval.sets import is_summary_set, load_qa_set, load_summary_set
from models.engine import ArticleQA, get_engine
from models.profiles import load_profile


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
    p.add_argument("--with", action="append", default=[], dest="changes", metavar="SECTION.SETTING=VALUE",
                   help="score the profile with this setting changed (repeatable), e.g. qa.max_windows=0")
    args = p.parse_args(argv)
    try:
        changes = parse_changes(args.changes)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.every < 1:
        print("error: --every takes a whole number from 1", file=sys.stderr)
        return 2
    if args.set_name in ("html-extraction", "pdf-extraction"):     # article text from pages, no model
        from eval.extraction import pdf_run, run, table
        text = table(run() if args.set_name == "html-extraction" else pdf_run())
        out = Path(args.out or f"reports/{args.set_name}")
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.md").write_text(text + "\n", encoding="utf-8")
        print(text)
        return 0
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
    rows, totals, engines = {}, {}, {}
    for prof in profiles:
        try:
            engine = ArticleQA(load_profile(prof, changes)) if changes else get_engine(prof)
            engines[prof] = engine
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
            rows[f"{prof} (seed lists)"] = run_qa(engines[prof], seed, desc=f"{prof} seed lists")
            totals[f"{prof} (seed lists)"] = summarize_qa(rows[f"{prof} (seed lists)"])
            for r in rows[f"{prof} (seed lists)"]:
                print(f"{prof} | {r['question']} -> " + " | ".join(r["predictions"]))
    write_report(out, args.set_name, "summary" if summary else "qa", rows, totals, cmd,
                 LIST_COLS if lists else None)
    print(markdown_table(totals, SUM_COLS if summary else LIST_COLS if lists else QA_COLS))
    print(f"report: {out}/summary.md, rows.json, chart.png")
    return 0


def parse_changes(specs: list[str]) -> dict[str, dict]:
    """``["qa.max_windows=0", ...]`` -> ``{"qa": {"max_windows": 0}}`` (values read as YAML)."""
    import yaml
    out: dict[str, dict] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"--with takes SECTION.SETTING=VALUE (e.g. qa.max_windows=0), not {spec!r}")
        out.setdefault(section, {})[name] = yaml.safe_load(value)
    return out


if __name__ == "__main__":
    sys.exit(main())
