"""The Gradio web page (``python -m serve``) and its API endpoints ``/answer`` and ``/summarize``.

The page never chooses a model: the profile is fixed when the server starts. Models load once at
start and are shared by every visitor; inference runs one request at a time (torch already uses
every core), with the queue's size and concurrency set by the profile's ``limits``.
"""
from __future__ import annotations

import html
import os
import gradio as gr

from models.loading import ModelLoadError
from models.text import InputError
from models.engine import MAX_WORDS_RANGE, TOP_K_RANGE, ArticleQA, get_engine
from models.examples import EXAMPLE_QUESTIONS, example_article
from serve.upload import upload_to_text

NOT_FOUND = "Not found in the article"


def split_questions(text: str) -> list[str]:
    """One question per non-empty line."""
    return [q.strip() for q in (text or "").splitlines() if q.strip()]


def highlight(article: str, results: list[dict]) -> dict:
    """HighlightedText value: the article with every selected answer span marked by question
    number (Q1, Q2, ...), by character offsets; overlapping spans keep the first question's mark."""
    ents: list[dict] = []
    for i, r in enumerate(results):
        for a in r["answers"]:
            if a["selected"] and not any(a["start"] < e["end"] and e["start"] < a["end"] for e in ents):
                ents.append({"entity": f"Q{i + 1}", "start": a["start"], "end": a["end"]})
    return {"text": article, "entities": sorted(ents, key=lambda e: e["start"])}


def answers_markdown(results: list[dict]) -> str:
    """Per question: the answer (or 'Not found in the article'), its confidence, the sentence it
    stands in, and the other candidates with theirs (``confidence``: each answer's share of the
    score of every span considered, see models/qa.py)."""
    out = []
    for i, r in enumerate(results):
        q = html.escape(r["question"])
        chosen = [a for a in r["answers"] if a["selected"]]
        if r["answer"] is None:
            out.append(f"### Q{i + 1}. {q}\n**{NOT_FOUND}** (no-answer confidence {r['score']:.0%})")
        else:
            ans = "; ".join(f"**{_show(a['answer'])}** ({a['confidence']:.0%})" for a in chosen)
            sent = _show(r["sentence"] or "")
            out.append(f"### Q{i + 1}. {q}\n{ans}\n\n> {sent}")
        others = [a for a in r["answers"] if not a["selected"]]
        if others:
            out.append("Other candidates: " + ", ".join(f"{_show(a['answer'])} ({a['confidence']:.0%})"
                                                         for a in others))
    return "\n\n".join(out)


def _show(text: str) -> str:
    """Text for Markdown: white space collapsed (an answer may span a line break) and escaped."""
    return html.escape(" ".join(text.split()))


LENGTH_STEP = 1.5   # Shorter divides the word budget by this, Longer multiplies: one undoes the other


def shorter_budget(words: float) -> int:
    """The word budget after "Shorter" (within ``MAX_WORDS_RANGE``)."""
    return max(MAX_WORDS_RANGE[0], round(float(words) / LENGTH_STEP))


def longer_budget(words: float) -> int:
    """The word budget after "Longer"; ``longer_budget(shorter_budget(w)) == w`` for budgets a
    person picks (multiples of 10 within range)."""
    return min(MAX_WORDS_RANGE[1], round(float(words) * LENGTH_STEP))


def summary_markdown(s: dict) -> str:
    return f"{html.escape(s['summary'])}\n\n*Method: {s['method']}, {len(s['summary'].split())} words.*"


class Handlers:
    """The page's actions over one shared engine; each returns what the page shows and turns
    bad input into a message instead of a traceback."""

    def __init__(self, engine: ArticleQA):
        self.engine = engine

    def ask(self, article: str, questions_text: str, top_k: int = 3, progress=gr.Progress()):
        """-> (answers Markdown, highlighted article, raw results)"""
        try:
            qs = split_questions(questions_text)
            if not qs:
                raise InputError("Type a question (one per line).")
            progress(0.1, desc=f"Reading the article for {len(qs)} question(s)")
            results = self.engine.predict_many(article, qs, int(top_k))
            return answers_markdown(results), highlight(article, results), results
        except (InputError, ModelLoadError) as exc:
            return f"**{html.escape(str(exc))}**", None, []

    def summarize(self, article: str, max_words: int, progress=gr.Progress()):
        try:
            progress(0.1, desc="Summarizing")
            return summary_markdown(self.engine.summarize(article, int(max_words)))
        except (InputError, ModelLoadError) as exc:
            return f"**{html.escape(str(exc))}**"

    def upload(self, data: bytes | None):
        """-> (article text, status message)"""
        if data is None:
            return gr.update(), ""
        lim = self.engine.profile.limits
        try:
            text = upload_to_text(data, lim.max_upload_bytes, lim.max_article_chars)
            return text, f"Loaded {len(text.split()):,} words from the file."
        except InputError as exc:
            return gr.update(), f"**{html.escape(str(exc))}**"

    # API endpoints: the same dicts as the Python API; errors become gr.Error messages
    def api_answer(self, article: str, questions: str, top_k: int = 3) -> list[dict]:
        """Answer questions (one per line) about an article; one predict() result per question."""
        try:
            return self.engine.predict_many(article, split_questions(questions), int(top_k))
        except (InputError, ModelLoadError) as exc:
            raise gr.Error(str(exc)) from None

    def api_summarize(self, article: str, max_words: int = 90) -> dict:
        """Summarize an article; the summarize() result."""
        try:
            return self.engine.summarize(article, int(max_words))
        except (InputError, ModelLoadError) as exc:
            raise gr.Error(str(exc)) from None


def build_app(engine: ArticleQA, status: str = "") -> gr.Blocks:
    h = Handlers(engine)
    prof = engine.profile
    with gr.Blocks(title="article-qa") as demo:
        gr.Markdown("# article-qa\nPaste or upload an article, read its summary, ask questions. "
                    f"Answers are exact spans of the article. Profile: **{prof.name}**. {status}")
        with gr.Row():
            with gr.Column(scale=3):
                article = gr.Textbox(label="Article", lines=14, max_lines=30,
                                     placeholder="Paste an article here, upload a file, or use the example.",
                                     elem_id="article")
                with gr.Row():
                    upload = gr.File(label="Upload .txt, .md or .html", file_types=[".txt", ".md", ".html", ".htm"],
                                     type="binary", height=90)
                    example = gr.Button("Use the example article", elem_id="example-btn")
                upload_msg = gr.Markdown()
            with gr.Column(scale=2):
                words = gr.Slider(*MAX_WORDS_RANGE, value=prof.summarizer.max_words, step=1, label="Summary length (words)")
                with gr.Row():
                    shorter = gr.Button("Shorter")
                    summarize_btn = gr.Button("Summarize", variant="primary", elem_id="summarize-btn")
                    longer = gr.Button("Longer")
                summary = gr.Markdown(elem_id="summary")
        questions = gr.Textbox(label="Questions (one per line)", lines=3, elem_id="questions",
                               placeholder="What gifts were exchanged?")
        with gr.Row():
            top_k = gr.Slider(*TOP_K_RANGE, value=prof.qa.top_k, step=1, label="Candidates shown per question")
            ask = gr.Button("Ask", variant="primary", elem_id="ask-btn")
        gr.Examples([[q] for q in EXAMPLE_QUESTIONS], inputs=[questions], label="Example questions (example article)")
        answers = gr.Markdown(elem_id="answers")
        highlighted = gr.HighlightedText(label="Answers in the article", combine_adjacent=False,
                                         show_legend=True, elem_id="highlighted")
        raw = gr.JSON(label="Raw results", visible=False)

        # the public endpoints are registered first so that they own the names /answer and /summarize
        gr.api(h.api_answer, api_name="answer")
        gr.api(h.api_summarize, api_name="summarize")
        private = dict(api_visibility="private")
        example.click(example_article, None, article, **private)
        upload.upload(h.upload, upload, [article, upload_msg], **private)
        summarize_btn.click(h.summarize, [article, words], summary, **private)
        shorter.click(shorter_budget, words, words, **private).then(
            h.summarize, [article, words], summary, **private)
        longer.click(longer_budget, words, words, **private).then(
            h.summarize, [article, words], summary, **private)
        ask.click(h.ask, [article, questions, top_k], [answers, highlighted, raw], **private)
        questions.submit(h.ask, [article, questions, top_k], [answers, highlighted, raw], **private)
    demo.queue(max_size=prof.limits.queue_size, default_concurrency_limit=prof.limits.concurrency)
    return demo


def warm_up(engine: ArticleQA) -> str:
    """Load the models before serving; a model that fails to load is reported on the page and
    the rest of the app keeps working."""
    notes = []
    for what, kw in (("QA model", dict(qa=True, summarizer=False)), ("summarizer", dict(qa=False, summarizer=True))):
        print(f"Loading the {what} ...", flush=True)
        try:
            engine.warm_up(**kw)
        except ModelLoadError as exc:
            print(f"  {what} unavailable: {exc}", flush=True)
            notes.append(f"The {what} is unavailable: {exc}")
    return " ".join(notes)


def parse_auth(raw: str) -> tuple[str, str]:
    """'user:password' -> (user, password)."""
    user, sep, pw = raw.partition(":")
    if not sep or not user or not pw:
        raise ValueError("Authentication must be given as 'user:password'.")
    return user, pw


def auth_from_env() -> tuple[str, str] | None:
    """``ARTICLE_QA_AUTH=user:password`` turns on Gradio's login page (off by default)."""
    raw = os.environ.get("ARTICLE_QA_AUTH", "")
    return parse_auth(raw) if raw else None


def launch(profile: str, host: str = "127.0.0.1", port: int | None = 7860, prevent_thread_lock: bool = False,
           auth: tuple[str, str] | None = None):
    engine = get_engine(profile)
    demo = build_app(engine, warm_up(engine))
    auth = auth or auth_from_env()
    demo.launch(server_name=host, server_port=port, share=False, auth=auth,
                max_file_size=engine.profile.limits.max_upload_bytes, prevent_thread_lock=prevent_thread_lock,
                footer_links=["api"], ssr_mode=False)
    return demo
