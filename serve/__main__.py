"""Command line: ``python -m serve [--profile P] [--host H] [--port N]`` serves the web page;
``python -m serve download --profile hub`` fetches a profile's hub models ahead of time;
``python -m serve ask "question" [--article FILE | --url LINK]`` answers from the terminal;
``python -m serve batch --articles A.jsonl --questions Q.txt --out OUT.jsonl`` answers a corpus."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from models.examples import EXAMPLE_ARTICLE

def needs_hub(profile: str) -> bool:
    """Whether a profile names a model by hub id (not a folder, nor ``package:`` weights)."""
    from models.profiles import load_profile
    prof = load_profile(profile)
    refs = [prof.qa.model, prof.qa.sentence_encoder, prof.summarizer.model]
    return any(ref and not ref.startswith("package:") and not Path(prof.resolve_model(ref)).is_dir()
               for ref in refs)


def keep_offline(profile: str, download: bool = False) -> None:
    """Nothing leaves the machine that the user did not ask for: Gradio's analytics are off
    always, and the Hugging Face hub is not looked up unless the profile names a hub model (or
    the command is ``download``). Set before gradio or transformers is imported."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        hub = download or needs_hub(profile)
    except (ValueError, OSError):
        hub = False                 # a bad profile is reported where it is loaded
    if not hub:
        os.environ["HF_HUB_OFFLINE"] = "1"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m serve", description=__doc__)
    p.add_argument("--profile", default=os.environ.get("ARTICLE_QA_PROFILE", "embedded"))
    p.add_argument("--host", default=os.environ.get("ARTICLE_QA_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("ARTICLE_QA_PORT", "7860")))
    p.add_argument("--auth", default=None, metavar="USER:PASSWORD",
                   help="require a login (default: $ARTICLE_QA_AUTH; off when neither is set)")
    p.add_argument("--replicas", type=int, default=0,
                   help="answer with this many Ray Serve replicas of the engine (pip install -e '.[scale]'); "
                        "0 = in this process")
    p.add_argument("--ray-address", default="local", help="with --replicas: local, auto or a cluster address")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("download", help="fetch the profile's hub models into the Hugging Face cache")
    ask = sub.add_parser("ask", help="answer a question about an article file (default: the seed article)")
    ask.add_argument("question")
    ask.add_argument("--article", default=str(EXAMPLE_ARTICLE), help="a file: text, HTML page or PDF")
    ask.add_argument("--url", default=None, help="a link to a web page or PDF (instead of --article)")
    batch = sub.add_parser("batch", help="answer questions for every article of a JSONL corpus (resumable)")
    batch.add_argument("--articles", required=True,
                       help="JSONL (one {\"id\", \"article\"} a line) or a folder of .txt, .md, .html and .pdf files")
    batch.add_argument("--questions", required=True, help="text file: one question a line")
    batch.add_argument("--out", required=True, help="JSONL answers; rerunning skips the articles already in it")
    batch.add_argument("--ray", default=None, metavar="auto|local|ADDRESS",
                       help="run on Ray Data (pip install -e '.[scale]'): local = this machine, auto = a "
                            "running cluster or else local, or a cluster address; default: in-process")
    batch.add_argument("--actors", type=int, default=2, help="with --ray: engine actors")
    batch.add_argument("--threads-per-actor", type=int, default=1, help="with --ray: torch threads per actor")
    args = p.parse_args(argv)
    keep_offline(args.profile, download=args.command == "download")

    from models.loading import ModelLoadError
    from models.text import InputError
    try:
        if args.command == "download":
            from serve.download import download_profile
            return download_profile(args.profile)
        if args.command == "batch":
            if args.ray:
                from serve.ray_batch import run_corpus_ray
                counts = run_corpus_ray(args.profile, args.articles, args.questions, args.out, args.ray,
                                        args.actors, args.threads_per_actor)
            else:
                from models.engine import get_engine
                from serve.batch import run_corpus
                counts = run_corpus(get_engine(args.profile), args.articles, args.questions, args.out)
            print(f"{counts['answered']} articles answered ({counts['errors']} with errors), "
                  f"{counts['skipped']} already done, {counts['rows']} rows written to {args.out}")
            return 0
        if args.command == "ask":
            from serve.api import load_article, predict
            article = load_article(args.url or args.article, profile=args.profile)
            if article.header():
                print(article.header())
            r = predict(article.text, args.question, profile=args.profile)
            if r["answer"] is None:
                print(f"Not found in the article ({r['score']:.0%} sure it does not say)")
            else:
                print(f"{r['answer']}  ({r['score']:.0%} likely right, characters {r['start']}-{r['end']})")
            return 0
        import logging
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)     # Gradio's own start-up requests
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()                          # "Loading weights" bars, for each model
        from serve.app import launch, parse_auth
        from models.memory import limit_arenas
        if "MALLOC_ARENA_MAX" not in os.environ:
            limit_arenas(2)   # before the web server starts its threads (serve/memory.py)
        engine = None
        if args.replicas:
            from serve.ray_serve import start_replicas
            print(f"Starting {args.replicas} Ray Serve replica(s) of the {args.profile} engine ...", flush=True)
            engine = start_replicas(args.profile, args.replicas, args.ray_address)
        launch(args.profile, args.host, args.port, auth=parse_auth(args.auth) if args.auth else None, engine=engine)
        return 0
    except (ModelLoadError, InputError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
