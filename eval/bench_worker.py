"""One side of the performance benchmark, run as its own process (``eval/bench.py`` drives it).

    python eval/bench_worker.py engine    # this project's engine (transformers 5, this venv)
    python eval/bench_worker.py anchor    # transformers 4.57.6 pipelines (the benchmark's own venv)

It reads one JSON request per line on stdin and writes one JSON reply per line on stdout, so both
sides get the same inputs and are timed the same way, each in a process of its own (its peak RSS is
its own). Standalone on purpose: in anchor mode it imports nothing from this project.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_gflops(n: int = 2048, repeats: int = 20) -> float:
    """Best float32 matrix-multiply rate of this process (the hardware's practical peak); a
    second of warm-up first, so the thread pool and clocks are up."""
    import torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = time.perf_counter()
    while time.perf_counter() - t < 1.0:
        torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


class Engine:
    """This project's API over a profile file."""

    def __init__(self, req: dict):
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from models.profiles import load_profile
        from models.engine import ArticleQA
        self.qa = ArticleQA(load_profile(req["profile"]))

    def load(self, req: dict) -> None:
        if req.get("task") == "summarize":
            self.qa.warm_up(qa=False, summarizer=True)
        else:
            self.qa.warm_up(qa=True, summarizer=False)

    def qa_run(self, req: dict) -> dict:
        article, questions = req["article"], req["questions"]
        seconds, results = [], []
        if req.get("batch"):
            t = time.perf_counter()
            results = self.qa.predict_many(article, questions, top_k=1)
            seconds = [(time.perf_counter() - t) / len(questions)] * len(questions)
        else:
            for q in questions:
                t = time.perf_counter()
                results.append(self.qa.predict_many(article, [q], top_k=1)[0])
                seconds.append(time.perf_counter() - t)
        top = [r["answers"][0] if r["answers"] else {"answer": None, "start": None, "end": None, "score": 0.0}
               for r in results]
        reader = self.qa.reader
        windows = reader.preprocess(article, questions, reader.sanitize()[0])   # what was read, for the FLOP count
        return {"seconds": seconds,
                "answers": [{k: a[k] for k in ("answer", "start", "end", "score")} for a in top],
                "window_lengths": [len(w) for w in windows.input_ids],
                "runtime": "-".join(reader.runtime_choice())}

    def summarize_run(self, req: dict) -> dict:
        t = time.perf_counter()
        out = self.qa.summarize(req["article"], req.get("max_words"))
        return {"seconds": [time.perf_counter() - t], "summary": out["summary"]}


class Anchor:
    """transformers 4.57.6 ``pipeline("question-answering")`` / ``pipeline("summarization")``."""

    def __init__(self, req: dict):
        self.req = req
        self.pipe = None

    def load(self, req: dict) -> None:
        import torch
        from transformers import pipeline
        task = "summarization" if req.get("task") == "summarize" else "question-answering"
        # float32 as our engine runs on CPU: 4.57's pipeline would otherwise keep a float16
        # checkpoint (the embedded model) in float16, slow on CPUs and numerically different
        self.pipe = pipeline(task, model=req["model"], tokenizer=req["model"], device=-1,
                             torch_dtype=torch.float32)
        assert self.pipe.model.dtype == torch.float32

    def qa_run(self, req: dict) -> dict:
        seconds, answers = [], []
        for q in req["questions"]:          # the pipeline's own loop is sequential either way
            t = time.perf_counter()
            out = self.pipe(question=q, context=req["article"], max_seq_len=req["max_seq_len"],
                            doc_stride=req["doc_stride"], max_answer_len=req["max_answer_len"], top_k=1,
                            handle_impossible_answer=False)
            seconds.append(time.perf_counter() - t)
            answers.append({k: out[k] for k in ("answer", "start", "end", "score")})
        return {"seconds": seconds, "answers": answers}

    def summarize_run(self, req: dict) -> dict:
        gen = req["generation"]
        t = time.perf_counter()
        out = self.pipe(req["article"], truncation=True, **gen)
        return {"seconds": [time.perf_counter() - t], "summary": out[0]["summary_text"]}


def main() -> None:
    mode = sys.argv[1]
    side = None
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "init":
            import torch
            torch.set_num_threads(req.get("threads") or torch.get_num_threads())
            side = Engine(req) if mode == "engine" else Anchor(req)
            reply = {"threads": torch.get_num_threads()}
        elif op == "load":
            side.load(req)
            reply = {}
        elif op == "qa":
            reply = side.qa_run(req)
        elif op == "summarize":
            reply = side.summarize_run(req)
        elif op == "matmul":
            reply = {"gflops": matmul_gflops()}
        elif op == "exit":
            break
        else:
            reply = {"error": f"unknown op {op}"}
        reply["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
