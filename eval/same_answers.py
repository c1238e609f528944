"""Are the answers the same? For a change meant to keep behaviour (a refactor, a retired option):

    python -m eval.same_answers write --profile embedded --set seed --set xquad --every 10 --out before.json
    ... change the code ...
    python -m eval.same_answers write --profile embedded --set seed --set xquad --every 10 --out after.json
    python -m eval.same_answers compare before.json after.json

``write`` records, for every question, what a user sees (answer, score, offsets, the no-answer
score, and each candidate's text, offsets, scores and ``selected``) exactly as ``predict_many``
returned it, questions batched per article as the evaluation suite asks them. ``compare`` prints
every difference and exits 1 when there is one.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from eval.sets import load_qa_set
from models.engine import get_engine

RESULT_KEYS = ("answer", "score", "start", "end", "no_answer_score", "sentence_start")
CANDIDATE_KEYS = ("answer", "score", "span_score", "share", "start", "end", "selected", "sentence_start")


def visible(result: dict) -> dict:
    """The parts of a result a user sees, in a fixed form."""
    return {**{k: result.get(k) for k in RESULT_KEYS},
            "answers": [{k: a.get(k) for k in CANDIDATE_KEYS} for a in result["answers"]]}


def answers_of(profile: str, set_name: str, every: int = 1) -> dict[str, dict]:
    """question id -> its visible result, questions of one article asked together."""
    items = load_qa_set(set_name)[::every]
    engine = get_engine(profile)
    by_context: dict[str, list] = defaultdict(list)
    for it in items:
        by_context[it.context].append(it)
    out = {}
    cap = engine.profile.limits.max_questions
    for context, questions in by_context.items():
        for k in range(0, len(questions), cap):
            group = questions[k:k + cap]
            for it, r in zip(group, engine.predict_many(context, [it.question for it in group])):
                out[f"{set_name}:{it.id}"] = visible(r)
    return out


def differences(before: dict, after: dict) -> list[str]:
    """One line per question whose visible result differs, or that only one side has."""
    lines = [f"{k}: only in the first file" for k in before.keys() - after.keys()]
    lines += [f"{k}: only in the second file" for k in after.keys() - before.keys()]
    for k in sorted(before.keys() & after.keys()):
        if before[k] != after[k]:
            lines.append(f"{k}: {json.dumps(before[k], sort_keys=True)}\n  -> {json.dumps(after[k], sort_keys=True)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.same_answers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="record the answers of a profile on QA sets")
    w.add_argument("--profile", default="embedded")
    w.add_argument("--set", action="append", dest="sets", required=True, help="a QA set (repeatable)")
    w.add_argument("--every", type=int, default=1, help="every K-th question of each set")
    w.add_argument("--out", required=True)
    c = sub.add_parser("compare", help="print the differences between two recordings")
    c.add_argument("first")
    c.add_argument("second")
    args = p.parse_args(argv)
    if args.command == "write":
        answers = {}
        for name in args.sets:
            answers.update(answers_of(args.profile, name, args.every))
        Path(args.out).write_text(json.dumps(answers, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"{len(answers)} questions -> {args.out}")
        return 0
    first, second = (json.loads(Path(f).read_text(encoding="utf-8")) for f in (args.first, args.second))
    lines = differences(first, second)
    print("\n".join(lines) if lines else f"the same: {len(first)} questions")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
