"""An experiment of issue 39 (measured, not shipped; docs/decisions.md, "Summaries past LEAD-3 on
news ... seventeenth"): does a sentence scorer that reads the words beat the one that reads features?

Three scorers, each the shipped context transformer of ``training.train_summarizer`` with its
settings, on the same development folds (the CNN/DM articles by 5-fold cross-validation, every
other source always trained on):
  base   : the shipped 20 features
  frozen : the features and the frozen 384-d sentence embedding through a learned D-wide bottleneck
  tuned  : the features and a D-wide projection of the sentence's mean-pooled states from a copy of
           MiniLM's top layer, fine-tuned with the scorer over cached states from below that layer
           (one layer's forward and backward pass a sentence a step)

    python -m training.experiment_summary_words --variants base,frozen --folds 0,1,2,3,4 --work runs/sum40
    python -m training.experiment_summary_words --variants tuned --folds 0 --tuned-epochs 6 --work runs/sum40

Prints each fold's mean ROUGE-1 / 2 / Lsum and, over all folds run, each variant's difference from
the first with its paired standard error.
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from eval.metrics import rouge
from eval.sets import SUMMARY_BENCHMARKS, data_dir, summary_split
from models.adapters import resolve_model_ref
from models.profiles import SummarizerSettings
from models.sentence_scorer import FEATURE_NAMES
from models.summarize import ExtractiveSummarizer, select_within_budget
from training.summary_data import load_labelled
from training.train_summarizer import ENCODER, ContextScorer, featurize, parse_args

NF = len(FEATURE_NAMES)


def states_below_top(articles, enc, path: Path, max_tokens: int):
    """Per article: (states [n_sent, T, 384] bf16, mask [n_sent, T] bool) below MiniLM's top layer."""
    if path.exists():
        return torch.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok, model = enc.encoder.tokenizer, enc.encoder.model
    out = []
    t0 = time.time()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for n, a in enumerate(articles):
            texts = [s.text(a.article) for s in a.sentences]
            e = tok(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
            h = model(**e, output_hidden_states=True).hidden_states[-2]
            out.append((h.to(torch.bfloat16).clone(), e["attention_mask"].bool().clone()))
            if n % 200 == 0:
                print(f"states {n}/{len(articles)} {time.time() - t0:.0f}s", flush=True)
    torch.save(out, path)
    return out


class WordsScorer(nn.Module):
    def __init__(self, variant: str, top_layer, d: int, args):
        super().__init__()
        self.variant = variant
        n_in = NF + (d if variant != "base" else 0)
        self.scorer = ContextScorer.build(n_in, args.hidden, args.context_layers, args.heads, args.dropout)
        if variant == "tuned":
            self.layer = copy.deepcopy(top_layer).float()
        if variant != "base":
            self.proj = nn.Linear(384, d)
            self.drop = nn.Dropout(0.2)

    def words(self, items):
        """items: list of (states, mask) of the batch's articles -> list of [n_i, 384]."""
        if self.variant == "frozen":
            return [e for e in items]
        hs = [s for s, _ in items]
        ms = [m for _, m in items]
        T = max(h.shape[1] for h in hs)
        h = torch.cat([nn.functional.pad(x.float(), (0, 0, 0, T - x.shape[1])) for x in hs])
        m = torch.cat([nn.functional.pad(x, (0, T - x.shape[1])) for x in ms])
        bias = torch.zeros(m.shape, dtype=h.dtype).masked_fill(~m, torch.finfo(h.dtype).min)[:, None, None, :]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = self.layer(h, attention_mask=bias)
        y = y[0] if isinstance(y, tuple) else y
        y = y.float()
        mf = m.unsqueeze(-1).float()
        v = (y * mf).sum(1) / mf.sum(1).clamp(min=1)
        v = nn.functional.normalize(v, dim=-1)
        return list(torch.split(v, [x.shape[0] for x in hs]))

    def forward(self, x, pad, items=None):
        if self.variant != "base":
            ws = self.words(items)
            z = torch.zeros(x.shape[0], x.shape[1], self.proj.out_features)
            for r, w in enumerate(ws):
                z[r, :len(w)] = self.drop(self.proj(w))
            x = torch.cat([x, z], -1)
        return self.scorer(x, pad)


def fit(idx, articles, feats, states, args, weights, variant, top_layer, d, epochs, layer_lr):
    torch.manual_seed(args.seed)
    x = np.concatenate([feats[i][:, :NF] for i in idx])
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = {i: torch.from_numpy(((feats[i][:, :NF] - mean) / std).astype(np.float32)) for i in range(len(articles))}
    emb = {i: torch.from_numpy(feats[i][:, NF:].astype(np.float32)) for i in range(len(articles))}
    model = WordsScorer(variant, top_layer, d, args)
    groups = [{"params": [p for n, p in model.named_parameters() if not n.startswith("layer.")], "lr": args.lr}]
    if variant == "tuned":
        groups.append({"params": list(model.layer.parameters()), "lr": layer_lr, "weight_decay": 0.01})
    opt = torch.optim.AdamW(groups, weight_decay=args.weight_decay)
    ws = np.array([weights.get(articles[i].source, 1.0) for i in idx])
    ws = ws / ws.mean()
    scale = sum(len(articles[i].labels) for i in idx) / len(idx)
    wmap = {i: float(w) * scale / len(articles[i].labels) for i, w in zip(idx, ws)}

    def item(i):
        return emb[i] if variant == "frozen" else states[i]

    def batch(ids):
        n = max(len(articles[i].labels) for i in ids)
        xb = torch.zeros(len(ids), n, NF)
        yb, wb = torch.zeros(len(ids), n), torch.zeros(len(ids), n)
        pad = torch.ones(len(ids), n, dtype=torch.bool)
        for r, i in enumerate(ids):
            m = len(articles[i].labels)
            xb[r, :m], pad[r, :m] = xs[i], False
            yb[r, :m] = torch.tensor(articles[i].labels, dtype=torch.float32)
            wb[r, :m] = wmap.get(i, 1.0)
        return xb, yb, wb, pad

    t0 = time.time()
    for ep in range(epochs):
        model.train()
        noisy = [len(articles[i].labels) + float(r) for i, r in zip(idx, torch.rand(len(idx)) * 4)]
        order = [idx[j] for j in sorted(range(len(idx)), key=noisy.__getitem__)]
        chunks = [order[b:b + args.batch_articles] for b in range(0, len(order), args.batch_articles)]
        total = 0.0
        for c in torch.randperm(len(chunks)).tolist():
            ids = chunks[c]
            xb, yb, wb, pad = batch(ids)
            logits = model(xb, pad, [item(i) for i in ids] if variant != "base" else None)
            keep = ~pad
            loss = (nn.functional.binary_cross_entropy_with_logits(logits[keep], yb[keep], reduction="none")
                    * wb[keep]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        print(f"  {variant} epoch {ep + 1}/{epochs} loss {total / len(chunks):.4f} {time.time() - t0:.0f}s", flush=True)
    model.eval()

    def score(i):
        with torch.no_grad():
            xb, _, _, pad = batch([i])
            return model(xb, pad, [item(i)] if variant != "base" else None)[0].numpy()
    return score


def rouge_of(score, ids, articles, feats, args):
    tot: dict[str, list[float]] = {}
    for i in ids:
        a = articles[i]
        texts = [s.text(a.article) for s in a.sentences]
        picked = select_within_budget(score(i), feats[i][:, NF:], texts, args.budget, args.redundancy,
                                      keep_first=args.keep_lead)
        r = rouge(" ".join(texts[j] for j in picked), a.reference)
        for k, v in r.items():
            tot.setdefault(k, []).append(v)
    return {k: np.array(v) for k, v in tot.items()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--variants", default="base,frozen,tuned")
    p.add_argument("--folds", default="0,1,2,3,4")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--tuned-epochs", type=int, default=None)
    p.add_argument("--d", type=int, default=8)
    p.add_argument("--layer-lr", type=float, default=5e-5)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--work", default="runs/sum40", help="cached states and the per-article results")
    p.add_argument("--features", default="runs/summarizer/features.npz", help="the features cache of training.train_summarizer")
    own, rest = p.parse_known_args()
    args = parse_args(rest)
    torch.set_num_threads(2)
    Path(own.work).mkdir(parents=True, exist_ok=True)
    base = data_dir() / "summarization"
    sources = args.sources.split(",")
    weights = {k: float(v) for k, v in (x.split("=", 1) for x in args.weight)}
    articles, _ = load_labelled(base, sources, [base / b for b in SUMMARY_BENCHMARKS])
    enc = ExtractiveSummarizer(SummarizerSettings(batch_size=64), resolve_model_ref(ENCODER))
    enc.warm_up()
    feats = featurize(articles, enc, Path(own.features))
    variants = own.variants.split(",")
    states = states_below_top(articles, enc, Path(own.work) / "states.pt", own.max_tokens) if "tuned" in variants else None
    top = enc.encoder.model.encoder.layer[-1]
    split = [summary_split(a.id) for a in articles]
    train = [i for i, (a, s) in enumerate(zip(articles, split)) if a.source != "bbc" or s == "train"]
    dev = [i for i, a in enumerate(articles) if a.source in set(args.dev_sources.split(","))]
    results: dict = {}
    for k in map(int, own.folds.split(",")):
        held = set(dev[k::5])
        fold_train = [i for i in train if i not in held]
        for v in variants:
            ep = own.tuned_epochs if v == "tuned" and own.tuned_epochs else own.epochs
            score = fit(fold_train, articles, feats, states, args, weights, v, top, own.d, ep, own.layer_lr)
            r = rouge_of(score, sorted(held), articles, feats, args)
            results.setdefault(v, {}).setdefault("per_article", {})[k] = {m: r[m].tolist() for m in r}
            print(f"fold {k} {v}: " + " / ".join(f"{m} {r[m].mean():.2f}" for m in r), flush=True)
        Path(own.work, f"{'-'.join(variants)}.json").write_text(json.dumps(results))
    for v in variants:
        allr = {m: np.concatenate([np.array(f[m]) for f in results[v]["per_article"].values()])
                for m in next(iter(results[v]["per_article"].values()))}
        print(v, {m: round(float(x.mean()), 2) for m, x in allr.items()})
        if v != variants[0]:
            b = {m: np.concatenate([np.array(f[m]) for f in results[variants[0]]["per_article"].values()]) for m in allr}
            print("  minus", variants[0], {m: f"{(allr[m] - b[m]).mean():+.2f} (se {(allr[m] - b[m]).std() / len(b[m]) ** 0.5:.2f})" for m in allr})


if __name__ == "__main__":
    main()
