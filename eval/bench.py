"""Performance benchmark: this engine (exact and fast profiles) against the transformers 4.57.6
question-answering pipeline, same weights, same windows, same questions, in one run.

    python -m eval.bench                    # both shipped readers (mpnet: embedded, minilm: fast)
    python -m eval.bench --models mpnet     # the embedded profile's reader only
    python -m eval.bench --models mpnet,minilm --workloads seed --no-summaries   # the speed table of the README
    python -m eval.bench --cpu avx2         # only the path of an AVX2-only CPU, on any machine

Besides the anchor, each model runs as the profile runs it ("exact": ``runtime.backend`` and
``runtime.dtype`` auto), on each ``--backends`` runtime (default torch-float32, onnx-float32,
onnx-int8: exact mode's windows on another backend), and with the fast profile's settings
("fast"). The CPU's flags are printed first: which runtime is fastest depends on them. Every
side runs on each ``--cpu`` path: ``native`` (this CPU as it is) and ``avx2`` (as an AVX2-only CPU,
``ARTICLE_QA_CPU=avx2``: ``auto``'s choices and torch's kernels held to AVX2, the anchor's too; ONNX
Runtime cannot be held there, so its sides are left out of that path).

It creates the anchor's virtual environment (``runs/bench/venv-tf4``: torch 2.13.0 CPU and
transformers 4.57.6) on first use, builds the random-weight models of real shapes it needs
(``runs/bench/``), then runs each side in a process of its own (``eval/bench_worker.py``), the
sides taking turns on each workload. Output: a table on stdout and ``runs/bench/results.json``.

Workloads: the seed article with 30 questions one by one; the same 30 in one ``predict_many``
call; a long article (about 20,000 words: XQuAD-en articles joined) with 5 questions; summaries.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from eval.metrics import percentiles
from eval.random_models import BERT_BASE, DISTILBART_CNN, build_random_bart, build_random_qa
from eval.sets import data_dir, seed_article
from models.profiles import load_profile
from eval.squad import normalize_answer, read_squad

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "runs" / "bench"
ANCHOR_VENV = WORK / "venv-tf4"
ANCHOR_PACKAGES = ["torch==2.13.0", "transformers==4.57.6"]
WORKER = REPO / "eval" / "bench_worker.py"
SEED_GOLD = REPO / "eval" / "gold" / "seed_gold.json"
FIXED_TOKENS = 60      # abstractive benchmark: tokens generated, no more and no fewer


# ---------------------------------------------------------------- set-up

def anchor_python() -> Path:
    """The anchor venv's python, created with pinned packages on first use."""
    py = ANCHOR_VENV / "bin" / "python"
    marker = ANCHOR_VENV / ".installed"
    if marker.exists() and marker.read_text() == " ".join(ANCHOR_PACKAGES):
        return py
    print(f"creating {ANCHOR_VENV} with {' '.join(ANCHOR_PACKAGES)} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(ANCHOR_VENV)], check=True)
    # torch first and pinned, so the CPU wheel on disk is used rather than a CUDA download
    subprocess.run([str(py), "-m", "pip", "install", "-q", ANCHOR_PACKAGES[0]], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *ANCHOR_PACKAGES], check=True)
    marker.write_text(" ".join(ANCHOR_PACKAGES))
    return py


def merged_folder(adapter: Path) -> Path:
    """A LoRA adapter merged into its base and saved in float32 (with its tokenizer and tuned
    settings), so the anchor pipeline can load the very weights the engine runs; cached under
    ``runs/bench`` by the adapter's hash."""
    import hashlib
    digest = hashlib.sha256((adapter / "adapter_model.safetensors").read_bytes()).hexdigest()[:12]
    folder = WORK / f"{adapter.name}-merged-{digest}"
    if not (folder / "model.safetensors").exists():
        print(f"merging {adapter} into its base for the anchor ...", flush=True)
        import shutil

        from models.loading import load_pretrained
        tok, model = load_pretrained(str(adapter), "qa")
        model.save_pretrained(folder, safe_serialization=True)
        tok.save_pretrained(folder)
        if (adapter / "inference.json").exists():
            shutil.copy2(adapter / "inference.json", folder / "inference.json")
    return folder


def qa_models(names: list[str]) -> dict[str, Path]:
    """Model folders by name: the shipped readers (``mpnet``: the embedded profile's, merged;
    ``minilm``: the fast profile's), and BERT-base-sized random weights."""
    out = {}
    if "mpnet" in names:
        out["mpnet"] = merged_folder(REPO / "models" / "mpnet_qa")
    if "minilm" in names:
        out["minilm"] = REPO / "models" / "minilm_qa"
    if "bert-base" in names:
        folder = WORK / "bert-base-qa"
        if not (folder / "model.safetensors").exists():
            print("building a random BERT-base QA model ...", flush=True)
            build_random_qa(folder, **BERT_BASE)
        out["bert-base"] = folder
    return out


def distilbart_model(corpus: str) -> Path:
    folder = WORK / "distilbart-cnn-random"
    if not (folder / "model.safetensors").exists():
        print("building a random model of distilbart-cnn-12-6's shape ...", flush=True)
        build_random_bart(folder, corpus, vocab_size=8000, max_positions=1024,
                          summarization={"num_beams": 4, "no_repeat_ngram_size": 3, "length_penalty": 2.0,
                                         "early_stopping": True}, **DISTILBART_CNN)
    # transformers 5 names the generic fast tokenizer "TokenizersBackend"; 4.57 knows it by its old name
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("tokenizer_class") == "TokenizersBackend":
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
        cfg_path.write_text(json.dumps(cfg, indent=1))
    return folder


def engine_profile(base: str, model: Path, name: str, **overrides) -> Path:
    """A copy of ``configs/<base>.yaml`` reading ``model`` (summarizer settings kept)."""
    prof = yaml.safe_load((REPO / "configs" / f"{base}.yaml").read_text())
    prof["qa"]["model"] = str(model)
    summ = prof["summarizer"]
    if summ.get("model", "").startswith("../"):
        summ["model"] = str((REPO / "configs" / summ["model"]).resolve())
    for section, values in overrides.items():
        prof.setdefault(section, {}).update(values)
    path = WORK / f"profile-{name}.yaml"
    path.write_text(yaml.safe_dump(prof))
    return path


def workloads() -> dict[str, dict]:
    """Seed article + 30 questions; a ~20,000-word article + 5 questions about it."""
    gold = json.loads(SEED_GOLD.read_text())
    seed_qs = [q["question"] for q in gold["questions"][:30]]
    xquad = read_squad(data_dir() / "qa" / "xquad-en" / "xquad.en.json")
    contexts: list[str] = []
    for ex in xquad:
        if not contexts or contexts[-1] != ex.context:
            contexts.append(ex.context)
    long_parts, words = [], 0
    for c in contexts:
        if words >= 20_000:
            break
        long_parts.append(c)
        words += len(c.split())
    long_article = "\n\n".join(long_parts)
    chosen = [ex for ex in xquad if ex.context in long_parts]
    step = max(1, len(chosen) // 5)
    long_qs = [chosen[i].question for i in range(0, step * 5, step)]
    return {"seed": {"article": seed_article(), "questions": seed_qs},
            "long": {"article": long_article, "questions": long_qs, "words": words}}


# ---------------------------------------------------------------- workers

def cpu_env(cpu: str) -> dict[str, str]:
    """Environment of a side on the ``cpu`` path: "native", or "avx2" (an AVX2-only CPU: our
    variable, and torch's own for the anchor, which does not import ``models``)."""
    from models.cpu_features import AVX2_TORCH_ENV, CPU_VARIABLE
    return {CPU_VARIABLE: "avx2", **AVX2_TORCH_ENV} if cpu == "avx2" else {CPU_VARIABLE: "native"}


class Worker:
    """A benchmark side in its own process, spoken to in JSON lines."""

    def __init__(self, python: Path, mode: str, init: dict, threads: int, cpu: str = "native"):
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false", TRANSFORMERS_VERBOSITY="error",
                   HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore", **cpu_env(cpu))
        self.log = open(WORK / f"worker-{mode}-{cpu}.log", "a")
        self.proc = subprocess.Popen([str(python), str(WORKER), mode], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     cwd=str(REPO), env=env)
        self.call({"op": "init", "threads": threads, **init})

    def call(self, req: dict) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker died on {req['op']} (see {self.log.name})")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


# ---------------------------------------------------------------- figures

def encoder_flops(lengths: list[int], hidden: int, layers: int, intermediate: int) -> float:
    """Multiply-add FLOPs of a BERT encoder over windows of these lengths (padding not counted):
    per layer and token 8h^2 (Q, K, V, output) + 4h*i (feed-forward), plus 4n^2h for attention."""
    n = np.asarray(lengths, dtype=np.float64)
    return float(layers * (n * (8 * hidden ** 2 + 4 * hidden * intermediate) + 4 * n ** 2 * hidden).sum())


def same_answer(a: dict, b: dict) -> str:
    """'same' (same characters), 'same text' (equal after SQuAD normalisation: our span widened
    to whole words or punctuation), or 'different'."""
    if (a["start"], a["end"]) == (b["start"], b["end"]):
        return "same"
    if a["answer"] and b["answer"] and normalize_answer(a["answer"]) == normalize_answer(b["answer"]):
        return "same text"
    if a["answer"] and b["answer"] and a["start"] is not None and b["start"] is not None \
            and a["start"] <= b["start"] and b["end"] <= a["end"] \
            and len(normalize_answer(a["answer"]).split()) == len(normalize_answer(b["answer"]).split()):
        return "same text"   # our span is the anchor's widened to the whole word
    return "different"


def summarise_side(seconds: list[float], rss: float) -> dict:
    p = percentiles(seconds)
    return {"p50_s": p["p50_ms"] / 1000, "p95_s": p["p95_ms"] / 1000, "q_per_s": len(seconds) / sum(seconds),
            "total_s": sum(seconds), "peak_rss_mb": rss}


def run_qa_bench(models: dict[str, Path], wl: dict, threads: int, anchor_py: Path,
                 backends: list[str] = (), which: tuple[str, ...] = ("seed", "batch", "long"),
                 cpu: str = "native") -> list[dict]:
    """Each model on the ``cpu`` path: the anchor, the engine's exact mode as the profile runs it
    ("exact", runtime auto), exact mode on each of ``backends`` ("torch-float32", "onnx-int8",
    ...: same windows, another runtime; ONNX sides only on the native path), and the fast
    profile's settings."""
    rows = []
    if cpu != "native":
        backends = [b for b in backends if not b.startswith("onnx")]
    for name, folder in models.items():
        cfg = json.loads((folder / "config.json").read_text())
        dims = (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"])
        exact = engine_profile("embedded", folder, f"{name}-exact")
        fast = engine_profile("fast", folder, f"{name}-fast")
        settings = load_profile(exact).qa         # with what was saved beside the weights
        sides = {"anchor": Worker(anchor_py, "anchor", {"model": str(folder)}, threads, cpu),
                 "exact": Worker(Path(sys.executable), "engine", {"profile": str(exact)}, threads, cpu)}
        for b in backends:
            backend, dtype = b.split("-", 1)
            prof = engine_profile("embedded", folder, f"{name}-{b}", runtime={"backend": backend, "dtype": dtype})
            sides[f"exact {b}"] = Worker(Path(sys.executable), "engine", {"profile": str(prof)}, threads, cpu)
        sides["fast"] = Worker(Path(sys.executable), "engine", {"profile": str(fast)}, threads, cpu)
        try:
            peak = sides["exact"].call({"op": "matmul"})["gflops"]
            common = {"max_seq_len": settings.max_seq_len, "doc_stride": settings.doc_stride,
                      "max_answer_len": settings.max_answer_len}
            for w in sides.values():
                w.call({"op": "load", "model": str(folder)})
                w.call({"op": "qa", "article": wl["seed"]["article"], "questions": wl["seed"]["questions"][:2],
                        **common})   # warm-up, not timed
            plan = [p for p, w in zip([("seed one by one", "seed", False), ("seed predict_many", "seed", True),
                                       ("long article", "long", False)], ("seed", "batch", "long"))
                    if w in which]
            anchor_ref: dict[str, dict] = {}      # workload -> the anchor's row
            exact_lengths: dict[str, list[int]] = {}
            for label, key, batch in plan:
                for side, w in sides.items():
                    if side == "anchor" and batch:
                        continue        # the anchor's reference is its sequential run
                    print(f"  [{cpu}] {name:9s} {label:18s} {side} ...", flush=True)
                    out = w.call({"op": "qa", "article": wl[key]["article"], "questions": wl[key]["questions"],
                                  "batch": batch, **common})
                    row = {"cpu": cpu, "model": name, "workload": label, "side": side, "key": key,
                           **summarise_side(out["seconds"], out["peak_rss_mb"]),
                           "answers": out["answers"], "window_lengths": out.get("window_lengths"),
                           "matmul_peak_gflops": peak}
                    if side == "anchor":
                        anchor_ref[key] = row
                    elif side == "exact":
                        exact_lengths[key] = row["window_lengths"]
                    if side.startswith("exact"):
                        row["runtime"] = out.get("runtime")
                    rows.append(row)
            for row in rows:
                if row["model"] != name:
                    continue
                ref = anchor_ref[row["key"]]
                # the anchor reads the same windows as the exact engine (same tokenizer, window
                # length and stride) but does not report them
                lengths = row["window_lengths"] or exact_lengths[row["key"]]
                row["gflops"] = encoder_flops(lengths, *dims) / row["total_s"] / 1e9
                row["share_of_peak"] = row["gflops"] / peak
                row["latency_ratio"] = row["p50_s"] / ref["p50_s"]
                row["throughput_ratio"] = row["q_per_s"] / ref["q_per_s"]
                verdicts = [same_answer(a, b) for a, b in zip(row["answers"], ref["answers"])]
                row["agreement"] = sum(v != "different" for v in verdicts) / len(verdicts)
                row["differences"] = [
                    {"question": q, "ours": a["answer"], "ours_score": a["score"], "anchor": b["answer"],
                     "anchor_score": b["score"], "verdict": v}
                    for q, a, b, v in zip(wl[row["key"]]["questions"], row["answers"], ref["answers"], verdicts)
                    if v != "same"]
        finally:
            for w in sides.values():
                w.close()
    return rows


def run_summary_bench(wl: dict, threads: int, anchor_py: Path) -> list[dict]:
    rows = []
    ext = Worker(Path(sys.executable), "engine", {"profile": str(REPO / "configs" / "embedded.yaml")}, threads)
    try:
        ext.call({"op": "load", "task": "summarize"})
        for key in ("seed", "long"):
            print(f"  extractive summary {key} ...", flush=True)
            out = ext.call({"op": "summarize", "article": wl[key]["article"]})
            rows.append({"summary": f"extractive, {key} article", "side": "exact",
                         "seconds": out["seconds"][0], "peak_rss_mb": out["peak_rss_mb"]})
    finally:
        ext.close()
    # abstractive: one chunk that fits the model, a fixed number of new tokens, beams as distilbart-cnn
    article = " ".join(wl["seed"]["article"].split()[:600])
    folder = distilbart_model(wl["seed"]["article"] + "\n" + wl["long"]["article"])
    gen = {"num_beams": 4, "no_repeat_ngram_size": 3, "min_new_tokens": FIXED_TOKENS,
           "max_new_tokens": FIXED_TOKENS, "length_penalty": 2.0, "early_stopping": True}
    prof = engine_profile("hub", REPO / "models" / "minilm_qa", "distilbart",
                          summarizer={"model": str(folder), "method": "abstractive", "generation": gen})
    sides = {"anchor": Worker(anchor_py, "anchor", {"model": str(folder)}, threads),
             "exact": Worker(Path(sys.executable), "engine", {"profile": str(prof)}, threads)}
    try:
        for w in sides.values():
            w.call({"op": "load", "task": "summarize", "model": str(folder)})
        times: dict[str, list[float]] = {s: [] for s in sides}
        rss: dict[str, float] = {}
        for _ in range(2):
            for side, w in sides.items():
                print(f"  abstractive summary {side} ...", flush=True)
                out = w.call({"op": "summarize", "article": article, "generation": gen})
                times[side].append(out["seconds"][0])
                rss[side] = out["peak_rss_mb"]
        for side in sides:
            rows.append({"summary": f"abstractive (distilbart-cnn shape, {FIXED_TOKENS} tokens, 4 beams)",
                         "side": side, "seconds": float(np.median(times[side])), "peak_rss_mb": rss[side]})
        rows[-1]["ratio"] = rows[-1]["seconds"] / rows[-2]["seconds"]
    finally:
        for w in sides.values():
            w.close()
    return rows


# ---------------------------------------------------------------- report

def print_table(qa_rows: list[dict], sum_rows: list[dict]) -> None:
    if qa_rows:
        print("\n| CPU path | model | workload | side | p50 s/q | p95 s/q | q/s | vs anchor latency | vs anchor q/s "
          "| GFLOP/s (share of peak) | peak RSS MB | same top answer |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in qa_rows:
        print(f"| {r.get('cpu', 'native')} | {r['model']} | {r['workload']} | {r['side']} | {r['p50_s']:.3f} | {r['p95_s']:.3f} "
              f"| {r['q_per_s']:.2f} | {r['latency_ratio']:.2f}x | {r['throughput_ratio']:.2f}x "
              f"| {r['gflops']:.0f} ({r['share_of_peak']:.0%}) | {r['peak_rss_mb']:.0f} "
              f"| {'-' if r['side'] == 'anchor' else format(r['agreement'], '.0%')} |")
    if qa_rows:
        runtimes = sorted({f"[{r.get('cpu', 'native')}] {r['side']} = {r['runtime']}" for r in qa_rows
                           if r.get("runtime")})
        peaks = {r.get("cpu", "native"): r["matmul_peak_gflops"] for r in qa_rows}
        print(f"\nmatmul peak (float32, 2048^2): {', '.join(f'{c} {g:.0f}' for c, g in peaks.items())} GFLOP/s; "
              f"the anchor runs torch float32; the engine's sides (backend, dtype): {'; '.join(runtimes)}")
    if sum_rows:
        print("\n| summary | side | seconds | peak RSS MB | vs anchor |\n|---|---|---|---|---|")
        for r in sum_rows:
            ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "-"
            print(f"| {r['summary']} | {r['side']} | {r['seconds']:.2f} | {r['peak_rss_mb']:.0f} | {ratio} |")
    diffs = [(r.get("cpu", "native"), r["model"], r["workload"], r["side"], d) for r in qa_rows
             if r["side"] != "anchor" for d in r["differences"]]
    if diffs:
        print("\nTop answers that are not character-identical to the anchor's:")
        for cpu, model, workload, side, d in diffs:
            print(f"- [{cpu}, {model}, {workload}, {side}] {d['question']!r}: ours {d['ours']!r} ({d['ours_score']:.3f}) "
                  f"vs anchor {d['anchor']!r} ({d['anchor_score']:.3f}): {d['verdict']}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mpnet,minilm", help="comma list: mpnet, minilm, bert-base")
    ap.add_argument("--no-summaries", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per side (0: torch's default)")
    ap.add_argument("--workloads", default="seed,batch,long",
                    help="comma list: seed (one by one), batch (predict_many), long (20,000 words)")
    ap.add_argument("--backends", default="torch-float32,onnx-float32,onnx-int8",
                    help="exact mode also run on these BACKEND-DTYPE runtimes ('' for none)")
    ap.add_argument("--cpu", default="native,avx2",
                    help="comma list of CPU paths: native (this CPU), avx2 (as an AVX2-only CPU)")
    args = ap.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    from models.cpu_features import describe_cpu
    print(f"CPU: {describe_cpu()}", flush=True)
    anchor_py = anchor_python()
    wl = workloads()
    print(f"seed article: {len(wl['seed']['article'].split())} words, 30 questions; "
          f"long article: {wl['long']['words']} words, 5 questions", flush=True)
    models = qa_models(args.models.split(","))
    qa_rows = [row for cpu in args.cpu.split(",")
               for row in run_qa_bench(models, wl, args.threads, anchor_py, [b for b in args.backends.split(",") if b],
                                       tuple(args.workloads.split(",")), cpu)]
    (WORK / "results.json").write_text(json.dumps({"qa": qa_rows}, indent=1))   # kept if summaries fail
    print_table(qa_rows, [])
    sum_rows = [] if args.no_summaries else run_summary_bench(wl, args.threads, anchor_py)
    print_table([], sum_rows)
    (WORK / "results.json").write_text(json.dumps({"qa": qa_rows, "summaries": sum_rows}, indent=1))
    print(f"\n{time.time() - t0:.0f} s; rows in {WORK / 'results.json'}")


if __name__ == "__main__":
    main()
