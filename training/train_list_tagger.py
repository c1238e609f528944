"""Train the list tagger: a token head (O / B / I) over the shipped reader's last hidden states,
which marks every span a question asks for (the MultiSpanQA recipe: one tagged span per item).

The reader's encoder stays frozen, so each training window costs one forward pass, done once and
cached (``--cache``); the head then trains in seconds. With ``--encoder-layers N`` the tagger also
trains a low-rank (LoRA) update of its own copy of the reader's top N layers, over the cached
states from below them (one backward pass through N layers a window, bfloat16 autocast). Data:

- MultiSpanQA's development half (``--multispan``): list questions, every gold span an item;
  scored by ``--folds``-fold cross-validation, then the shipped head trains on all of it;
- single-span questions from the reader's own training paragraphs (``--singles``, SQuAD-shifts),
  so a question with one answer keeps one span.

``python -m training.train_list_tagger --profile embedded --out models/mpnet_qa`` writes
``list_tagger.safetensors`` and ``list_tagger.json`` (its settings and cross-validated scores)
beside the reader's weights, which the reader loads when they are there (models/list_tagger.py).
"""
from __future__ import annotations

import argparse
import functools
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from models.list_tagger import (ListTagger, TaggerConfig, decode_tagged_spans, list_or_best, merge_tagged_spans,
                                token_labels)

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "qa"


def multispan_examples(path: Path) -> list[dict]:
    """MultiSpanQA questions: context, question, gold character spans."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for art in raw["data"]:
        for par in art["paragraphs"]:
            for qa in par["qas"]:
                spans = sorted({(a["answer_start"], a["answer_start"] + len(a["text"])) for a in qa["answers"]})
                out.append({"id": qa["id"], "context": par["context"], "question": qa["question"],
                            "spans": spans, "kind": "list"})
    return out


# an enumeration inside one answer: "x, y and z", "x or y"
_ITEM_SEP = re.compile(r",\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+")
_PLURAL_CUE = re.compile(r"\b(are|were|some|examples?|types|kinds|list|name|include|includes|included)\b", re.I)


def enumeration_items(answer: str, question: str) -> list[tuple[int, int]] | None:
    """The items of an answer that enumerates ("fMRI, PET, SPECT" -> three items), as offsets in
    the answer, or None when it does not read as a list: fewer than two items, an item of more
    than five words or without a letter, a number with thousands ("20,000"), or two items to a
    question with no plural cue ("weight and balance" to "What does a pan need?" is kept whole)."""
    if re.search(r"\d,\d", answer):
        return None
    items, pos = [], 0
    for m in list(_ITEM_SEP.finditer(answer)) + [None]:
        end = m.start() if m else len(answer)
        piece = answer[pos:end]
        lead = len(piece) - len(piece.lstrip())
        s, e = pos + lead, pos + len(piece.rstrip())
        if e > s:
            items.append((s, e))
        pos = m.end() if m else pos
    if len(items) < 2 or any(len(answer[s:e].split()) > 5 or not re.search(r"[A-Za-z]", answer[s:e])
                             for s, e in items):
        return None
    if len(items) == 2 and not _PLURAL_CUE.search(question):
        return None
    return items


def squad_examples(paths: list[Path], n_single: int, n_list: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Questions drawn from SQuAD-style files: ``n_single`` whose first answer is one span, and
    ``n_list`` whose first answer enumerates items (``enumeration_items``), each item a span."""
    singles, lists = [], []
    for path in paths:
        raw = json.loads(path.read_text(encoding="utf-8"))
        for art in raw["data"]:
            for par in art["paragraphs"]:
                for qa in par["qas"]:
                    if not qa.get("answers"):
                        continue
                    a = qa["answers"][0]
                    row = {"id": qa["id"], "context": par["context"], "question": qa["question"]}
                    items = enumeration_items(a["text"], qa["question"])
                    if items:
                        lists.append({**row, "kind": "list",
                                      "spans": [(a["answer_start"] + s, a["answer_start"] + e) for s, e in items]})
                    elif not _ITEM_SEP.search(a["text"]):
                        singles.append({**row, "kind": "single",
                                        "spans": [(a["answer_start"], a["answer_start"] + len(a["text"]))]})
    random.Random(seed).shuffle(singles)
    random.Random(seed).shuffle(lists)
    return singles[:n_single], lists[:n_list]


def extract_features(profile: str, examples: list[dict], cache: Path, layers: int = 0) -> list[dict]:
    """Each example's windows as the reader reads them: the encoder's hidden states below its top
    ``layers`` layers (the last states for 0; float16, every token of the window), which tokens
    are the article's, the reader's start/end logits, the article tokens' offsets and labels;
    cached in ``cache``."""
    import torch
    if cache.exists():
        data = torch.load(cache, weights_only=False)
        if [e["id"] for e in data] == [e["id"] for e in examples] and data[0].get("layers") == layers:
            return data
    from models.engine import get_engine
    reader = get_engine(profile)._reader()
    wparams, _ = reader.sanitize()
    out, t0 = [], time.time()
    for i, ex in enumerate(examples):
        windows = reader.preprocess(ex["context"], [ex["question"]], wparams)
        feats: list[dict] = [None] * len(windows)  # type: ignore[list-item]
        for idx, _, res in reader._passes(windows, None, hidden=True):
            states = res.hidden_states[-1 - layers]
            for j, w in enumerate(idx):
                n = len(windows.input_ids[w])
                cmask = np.asarray(windows.context_mask[w], dtype=bool)
                offs = windows.offsets[w][cmask]
                feats[w] = {"hidden": states[j, :n].to(torch.float16).clone(), "context": cmask,
                            "start": res.start_logits[j, :n].float().numpy(),
                            "end": res.end_logits[j, :n].float().numpy(),
                            "offsets": offs, "labels": token_labels(offs, ex["spans"])}
        out.append({"id": ex["id"], "kind": ex["kind"], "context": ex["context"], "spans": ex["spans"],
                    "layers": layers, "windows": feats})
        if (i + 1) % 100 == 0:
            print(f"features {i + 1}/{len(examples)} ({time.time() - t0:.0f} s)", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, cache)
    return out


def _batch(windows: list[dict]):
    """Padded tensors of several whole windows: hidden, attention mask, start, end, article mask,
    labels (-100 on every token that is not the article's)."""
    import torch
    n = max(len(w["context"]) for w in windows)
    h = torch.zeros(len(windows), n, windows[0]["hidden"].shape[-1])
    att = torch.zeros(len(windows), n, dtype=torch.long)
    st, en = torch.zeros(len(windows), n), torch.zeros(len(windows), n)
    mask = torch.zeros(len(windows), n, dtype=torch.bool)
    labels = torch.full((len(windows), n), -100, dtype=torch.long)
    for i, w in enumerate(windows):
        k = len(w["context"])
        cm = torch.from_numpy(w["context"])
        h[i, :k] = w["hidden"].float()
        att[i, :k] = 1
        st[i, :k], en[i, :k] = torch.from_numpy(w["start"]), torch.from_numpy(w["end"])
        mask[i, :k] = cm
        labels[i, :k][cm] = torch.from_numpy(w["labels"])
    return h, att, st, en, mask, labels


def train_head(data: list[dict], config: TaggerConfig, epochs: int, seed: int, lr: float = 2e-3,
               encoder=None, lora_lr: float = 5e-4) -> ListTagger:
    """Fit the tagger on every window of ``data`` (cross-entropy, items weighted as configured):
    the head, and, with ``config.encoder_layers``, the low-rank update of its copy of
    ``encoder``'s top layers (bfloat16 autocast, batches of similar length)."""
    import torch
    torch.manual_seed(seed)
    tagger = ListTagger(config, encoder).float()
    head_params = [p for n, p in tagger.named_parameters() if not n.startswith("layers.")]
    groups = [{"params": head_params, "lr": lr}]
    if tagger.layers is not None:
        groups.append({"params": [p for p in tagger.layers.parameters() if p.requires_grad], "lr": lora_lr})
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    windows = [w for ex in data for w in ex["windows"] if len(w["labels"])]
    weight = torch.tensor([1.0, config.item_weight, config.item_weight])
    rng = random.Random(seed)
    size = 16 if tagger.layers is None else 8
    order = list(range(len(windows)))
    tagger.train()
    t0 = time.time()
    for epoch in range(epochs):
        if tagger.layers is None:       # the head alone: shuffled windows, as the shipped head was trained
            rng.shuffle(order)
            batches = [order[b:b + size] for b in range(0, len(order), size)]
        else:                           # through layers: batches of similar length, less padding to run
            order = sorted(order, key=lambda i: len(windows[i]["context"]) + rng.random() * 64)
            batches = [order[b:b + size] for b in range(0, len(order), size)]
            rng.shuffle(batches)
        total = 0.0
        for batch in batches:
            h, att, st, en, mask, labels = _batch([windows[i] for i in batch])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=tagger.layers is not None):
                logits = tagger(tagger.encode(h, att).float(), st, en, mask)
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, 3), labels.reshape(-1),
                                                     weight=weight, ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        if tagger.layers is not None:
            print(f"  epoch {epoch + 1}/{epochs}: loss {total / len(batches):.4f} ({time.time() - t0:.0f} s)",
                  flush=True)
    tagger.eval()
    return tagger


def tag_probs(tagger: ListTagger, w: dict) -> np.ndarray:
    """(article tokens, 3) tag probabilities of one cached window."""
    import torch
    with torch.inference_mode():
        h = w["hidden"].float()[None]
        states = tagger.encode(h, torch.ones(1, h.shape[1], dtype=torch.long))[0].numpy()
    cm = w["context"]
    return tagger.tag_probs(states[cm], w["start"][cm], w["end"][cm])


def predict_spans(head: ListTagger, ex: dict, threshold: float, list_min: float = 0.0
                  ) -> list[tuple[int, int, float]]:
    """The tagged spans of one example's windows, merged across windows; a list only when two
    of them score ``list_min`` or more (else the best alone)."""
    spans = []
    for w in ex["windows"]:
        if len(w["labels"]):
            spans += decode_tagged_spans(tag_probs(head, w), w["offsets"], ex["context"], threshold)
    return list_or_best(merge_tagged_spans(spans), list_min)


def cross_validate(lists: list[dict], singles: list[dict], extra: list[dict], fit: Callable[..., ListTagger],
                   folds: int, thresholds: list[tuple[float, float]], seed: int) -> dict:
    """Scores of heads trained without each fold of the list questions (all singles but a held-out
    share in training), on the held-out fold and held-out singles, per threshold. ``fit(data,
    seed)`` trains one tagger (``train_head`` with its settings)."""
    rng = random.Random(seed)
    order = list(range(len(lists)))
    rng.shuffle(order)
    held_singles = singles[: len(singles) // 5]
    train_singles = singles[len(singles) // 5:]
    per = {t: {"lists": ([], []), "singles": ([], [])} for t in thresholds}   # t: (threshold, list_min)
    for f in range(folds):
        test_idx = set(order[f::folds])
        train = [lists[i] for i in order if i not in test_idx] + train_singles + extra
        head = fit(train, seed=seed + f)
        test_lists = [lists[i] for i in sorted(test_idx)]
        test_singles = held_singles[f::folds]
        for t in thresholds:
            for name, part in (("lists", test_lists), ("singles", test_singles)):
                for ex in part:
                    spans = predict_spans(head, ex, *t)
                    per[t][name][0].append([ex["context"][s:e] for s, e, _ in spans])
                    per[t][name][1].append([[ex["context"][s:e]] for s, e in ex["spans"]])
        print(f"fold {f + 1}/{folds} done", flush=True)
    from eval.metrics import multispan_scores
    out = {}
    for t in thresholds:
        lp, lg = per[t]["lists"]
        sp, sg = per[t]["singles"]
        out[f"{t[0]}/{t[1]}"] = {"lists": {**multispan_scores(lp, lg),
                                 "spans_per_question": round(float(np.mean([len(p) for p in lp])), 2)},
                       "singles": {**multispan_scores(sp, sg),
                                   "more_than_one": round(float(np.mean([len(p) > 1 for p in sp])) * 100, 1)}}
    return out


def product_cross_validate(profile: str, lists: list[dict], singles: list[dict], extra: list[dict],
                           fit: Callable[..., ListTagger], folds: int, settings: list[tuple[float, float]],
                           seed: int) -> dict:
    """Cross-validation through the product: each fold's head is put in the profile's reader, which
    answers that fold's MultiSpanQA questions as a user would get them (its windows, no-answer
    decision, best span when the tagger finds one item), scored by ``python -m eval``'s metric."""
    from dataclasses import replace

    from eval.runner import run_qa, summarize_qa
    from eval.sets import load_qa_set
    from models.engine import get_engine
    engine = get_engine(profile)
    reader = engine._reader()
    by_id = {it.id: it for it in load_qa_set("multispan")}
    order = list(range(len(lists)))
    random.Random(seed).shuffle(order)
    train_singles = singles[len(singles) // 5:]
    rows: dict[tuple[float, float], list[dict]] = {t: [] for t in settings}
    for f in range(folds):
        test_idx = set(order[f::folds])
        head = fit([lists[i] for i in order if i not in test_idx] + train_singles + extra, seed=seed + f)
        config = head.config
        if head.layers is not None:
            head.layers.merge()
            head.layers.to(reader.model.dtype)
        items = [by_id[lists[i]["id"]] for i in sorted(test_idx)]
        for t in settings:
            head.config = replace(config, threshold=t[0], list_min=t[1])
            reader.list_tagger = head
            rows[t] += run_qa(engine, items, desc=f"fold {f + 1} {t[0]}/{t[1]}")
    out = {}
    for t, r in rows.items():
        tot = summarize_qa(r)
        out[f"{t[0]}/{t[1]}"] = {k: tot[k] for k in ("em_p", "em_r", "em_f1", "pm_p", "pm_r", "pm_f1",
                                                     "spans_per_question")}
        print(f"product {t[0]}/{t[1]}: {out[f'{t[0]}/{t[1]}']}", flush=True)
    return out


def single_answer_lists(profile: str, list_mins: list[float]) -> None:
    """How many single-answer questions (the tests' XQuAD-en sample and the seed's single ones) the
    reader answers with more than one selected span, for each ``list_min`` of its tagger."""
    from collections import defaultdict
    from dataclasses import replace

    from eval.sets import load_qa_set
    from models.engine import get_engine
    engine = get_engine(profile)
    reader = engine._reader()
    base = reader.list_tagger.config
    items = load_qa_set(str(REPO / "tests" / "data" / "xquad_en_sample.json"))
    items += [it for it in load_qa_set("seed") if it.kind == "single"]
    by_context = defaultdict(list)
    for it in items:
        by_context[it.context].append(it)
    for list_min in list_mins:
        reader.list_tagger.config = replace(base, list_min=list_min)
        lists = sum(sum(a["selected"] for a in r["answers"]) > 1
                    for context, its in by_context.items()
                    for r in engine.predict_many(context, [it.question for it in its]))
        print(f"list_min {list_min}: {lists} of {len(items)} single-answer questions answered with a list", flush=True)
    reader.list_tagger.config = base


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.train_list_tagger", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="embedded")
    p.add_argument("--multispan", default=str(DATA / "multispanqa" / "dev.json"))
    p.add_argument("--singles", nargs="*", default=[str(DATA / "squadshifts" / "new_wiki_v1.0.json")])
    p.add_argument("--n-singles", type=int, default=600)
    p.add_argument("--n-enumerations", type=int, default=0,
                   help="also train on this many single-answer questions whose answer enumerates items, split into them")
    p.add_argument("--cache", default="runs/list_tagger/features.pt")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds of the list questions (0: none)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--product-folds", type=int, default=0,
                   help="also cross-validate through the profile's reader, answering as a user would get it")
    p.add_argument("--width", type=int, default=128, help="channels of the head's convolutions")
    p.add_argument("--kernel", type=int, default=5, help="tokens the first convolution reads")
    p.add_argument("--item-weight", type=float, default=1.0, help="loss weight of B and I against O")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--encoder-layers", type=int, default=0,
                   help="the tagger's own LoRA-updated copy of the reader's top N layers (0: the head alone)")
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--lora-lr", type=float, default=5e-4)
    p.add_argument("--thresholds", default="0.3,0.4,0.5,0.6")
    p.add_argument("--list-min", default="0", help="a list only when two items score this much (comma-separated: tried)")
    p.add_argument("--threshold", default=None, help="the shipped THRESHOLD/LIST_MIN (default: best CV em_f1 + pm_f1)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default=None, help="write the head trained on all the data into this folder")
    p.add_argument("--single-lists", action="store_true",
                   help="only count the single-answer questions the profile's reader answers with a list (--list-min)")
    args = p.parse_args(argv)
    if args.single_lists:
        single_answer_lists(args.profile, [float(m) for m in args.list_min.split(",")])
        return 0

    lists = multispan_examples(Path(args.multispan))
    singles, enumerations = squad_examples([Path(x) for x in args.singles], args.n_singles, args.n_enumerations,
                                           args.seed)
    cache = Path(args.cache)
    k = args.encoder_layers
    tag = f".below{k}" if k else ""
    lists = extract_features(args.profile, lists, cache.with_suffix(f"{tag}.multispan.pt"), k)
    singles = extract_features(args.profile, singles, cache.with_suffix(f"{tag}.singles.pt"), k)
    enumerations = extract_features(args.profile, enumerations, cache.with_suffix(f"{tag}.enumerations.pt"), k)
    hidden_size = lists[0]["windows"][0]["hidden"].shape[-1]
    config = TaggerConfig(hidden_size=hidden_size, width=args.width, kernel=args.kernel, item_weight=args.item_weight,
                          encoder_layers=k, lora_rank=args.lora_rank, lora_alpha=2.0 * args.lora_rank)
    encoder = None
    if k:
        from models.engine import get_engine
        encoder = get_engine(args.profile)._reader().model.base_model.encoder
    fit = functools.partial(train_head, config=config, epochs=args.epochs, lr=args.lr, encoder=encoder,
                            lora_lr=args.lora_lr)
    thresholds = [(float(t), float(m)) for t in args.thresholds.split(",") for m in args.list_min.split(",")]
    t0 = time.time()
    cv = {}
    if args.folds > 1:
        cv = cross_validate(lists, singles, enumerations, fit, args.folds, thresholds, args.seed)
        for t, s in cv.items():
            print(f"threshold {t}: lists {s['lists']} | singles {s['singles']}", flush=True)
        print(f"cross-validation: {time.time() - t0:.0f} s")
    if args.product_folds > 1:
        product_cross_validate(args.profile, lists, singles, enumerations, fit, args.product_folds, thresholds,
                               args.seed)
    if args.out:
        if not (args.threshold or cv):
            p.error("--out needs cross-validation (--folds 2 or more) or --threshold")
        best = args.threshold or max(cv, key=lambda t: cv[t]["lists"]["pm_f1"] + cv[t]["lists"]["em_f1"])
        head = fit(lists + singles + enumerations, seed=args.seed)
        threshold, list_min = (float(x) for x in best.split("/"))
        cfg = TaggerConfig(**{**config.__dict__, "threshold": threshold, "list_min": list_min})
        head.config = cfg
        head.save(Path(args.out), {"command": "python -m training.train_list_tagger " + " ".join(argv or sys.argv[1:]),
                                   "cross_validation": cv.get(best), "list_questions": len(lists),
                                   "single_questions": len(singles), "enumerations": len(enumerations)})
        print(f"wrote {args.out}/list_tagger.safetensors (threshold {best})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
