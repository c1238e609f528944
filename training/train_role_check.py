"""Train the role check (models/role_check.py) over the shipped reader's hidden states.

Pairs from the reader's training paragraphs (SQuAD-shifts): each question whose names can be
swapped or replaced (``models.squad.swap_names``) gives its gold span twice, once under the
question as asked (roles match: 1) and once under the changed question (0). The reader stays
frozen: each question costs one forward pass, cached in ``--cache``; the head trains in seconds.

``python -m training.train_role_check --profile embedded --out models/mpnet_qa`` writes
``role_check.safetensors`` and ``role_check.json`` beside the reader's weights.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

from models.role_check import RoleCheck, RoleCheckConfig, span_state, token_range
from models.squad import read_squad, swap_names

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "qa"
TRAIN = [DATA / "squadshifts" / f for f in ("new_wiki_v1.0.json", "amazon_reviews_v1.0.json", "reddit_v1.0.json")]


def pairs(paths: list[Path], n: int, seed: int) -> list[tuple]:
    """Up to ``n`` (example, changed example) pairs, drawn with ``seed``."""
    rng = random.Random(seed)
    out = []
    for path in paths:
        for e in read_squad(path):
            changed = swap_names(e, rng)
            if changed is not None:
                out.append((e, changed))
    random.Random(seed).shuffle(out)
    return out[:n]


def span_states(profile: str, examples: list[tuple], cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(states, labels): the gold span's state under each question of each pair; cached."""
    if cache.exists():
        data = np.load(cache)
        if len(data["labels"]) == 2 * len(examples):
            return data["states"].astype(np.float32), data["labels"]
    from models.engine import get_engine
    reader = get_engine(profile)._reader()
    wparams, _ = reader.sanitize()
    states, labels, t0 = [], [], time.time()
    for i, (orig, changed) in enumerate(examples):
        start = orig.answer_starts[0]
        end = start + len(orig.answers[0])
        for label, question in ((1, orig.question), (0, changed.question)):
            windows = reader.preprocess(orig.context, [question], wparams)
            _, _, hidden = reader.forward(windows, hidden=True)
            for w in range(len(windows)):
                span = token_range(windows.offsets[w], windows.context_mask[w], start, end)
                if span is not None:
                    states.append(span_state(hidden[w], *span).astype(np.float16))
                    labels.append(label)
                    break
            else:
                states.append(np.zeros(4 * hidden[0].shape[-1], dtype=np.float16))
                labels.append(label)
        if (i + 1) % 200 == 0:
            print(f"pairs {i + 1}/{len(examples)} ({time.time() - t0:.0f} s)", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, states=np.stack(states), labels=np.array(labels))
    return np.stack(states).astype(np.float32), np.array(labels)


def train(states: np.ndarray, labels: np.ndarray, config: RoleCheckConfig, epochs: int, seed: int,
          lr: float = 1e-3) -> RoleCheck:
    import torch
    torch.manual_seed(seed)
    head = RoleCheck(config)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    x, y = torch.from_numpy(states), torch.from_numpy(labels.astype(np.float32))
    g = torch.Generator().manual_seed(seed)
    head.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for b in range(0, len(x), 64):
            idx = order[b:b + 64]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(head(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


def evaluate_in_reader(profile: str, folder: str, settings: list[tuple[float, float]]) -> None:
    """The check put in the profile's reader with each (weight, refuse_below): the share of
    ``xquad-swapped`` (every third question) refused, and F1 on the XQuAD-en sample of the tests."""
    from dataclasses import replace

    from eval.runner import run_qa, summarize_qa
    from eval.sets import load_qa_set
    from models.engine import get_engine
    engine = get_engine(profile)
    reader = engine._reader()
    head = RoleCheck.load(folder)
    swapped = load_qa_set("xquad-swapped")[::3]
    sample = load_qa_set(str(REPO / "tests" / "data" / "xquad_en_sample.json"))
    for setting in [None] + settings:
        reader.role_check = None if setting is None else head
        if setting is not None:
            head.config = replace(head.config, weight=setting[0], refuse_below=setting[1])
        a, b = summarize_qa(run_qa(engine, swapped, desc="swapped")), summarize_qa(run_qa(engine, sample, desc="xquad"))
        print(f"{setting or 'without'}: xquad-swapped refused {a['no_answer_acc']}%, XQuAD-en sample F1 {b['f1']}",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.train_role_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="embedded")
    p.add_argument("--pairs", type=int, default=3000)
    p.add_argument("--cache", default="runs/role_check/states.npz")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--weight", type=float, default=1.0, help="candidates are scored x P(roles match) ** weight")
    p.add_argument("--refuse-below", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--out", default=None)
    p.add_argument("--evaluate", default=None, help="a folder with a trained check: measure it in the reader")
    args = p.parse_args(argv)
    from eval.metrics import auroc
    if args.evaluate:
        evaluate_in_reader(args.profile, args.evaluate, [(1.0, 0.0), (1.0, 0.2), (1.0, 0.3), (1.0, 0.4)])
        return 0
    examples = pairs(TRAIN, args.pairs, args.seed)
    states, labels = span_states(args.profile, examples, Path(args.cache))
    config = RoleCheckConfig(hidden_size=states.shape[1] // 4, width=args.width, weight=args.weight,
                             refuse_below=args.refuse_below)
    n = len(examples)
    held = np.zeros(len(labels), dtype=bool)
    held[2 * (n * 4 // 5):] = True          # the last fifth of the pairs, both questions of each
    head = train(states[~held], labels[~held], config, args.epochs, args.seed)
    probs = head.probs(states[held])
    acc = float(((probs >= 0.5) == labels[held]).mean())
    print(f"held-out pairs: AUROC {auroc(probs, labels[held]):.3f}, accuracy {acc:.3f}, "
          f"mean P(match) right {probs[labels[held] == 1].mean():.3f} / changed {probs[labels[held] == 0].mean():.3f}")
    if args.out:
        head = train(states, labels, config, args.epochs, args.seed)
        head.save(Path(args.out), {"command": "python -m training.train_role_check " + " ".join(argv or sys.argv[1:]),
                                   "pairs": n, "held_out_auroc": round(auroc(probs, labels[held]), 4)})
        print(f"wrote {args.out}/role_check.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
