"""The Gradio web page (``python -m serve``) and its API endpoints ``/answer`` and ``/summarize``.

The page never chooses a model: the profile is fixed when the server starts. Models load once at
start and are shared by every visitor; inference runs one request at a time (torch already uses
every core), with the queue's size and concurrency set by the profile's ``limits``.
"""
from __future__ import annotations

import contextvars
import html
import logging
import os

import gradio as gr

from models.engine import MAX_WORDS_RANGE, TOP_K_RANGE, ArticleQA, get_engine
from models.examples import EXAMPLE_QUESTIONS, example_article
from models.loading import ModelLoadError
from models.text import InputError
from models.extract import Extracted, extract_html, looks_like_html
from serve.answer_view import render_answers, render_view
from serve.sources import load_article

log = logging.getLogger("article_qa.serve")

# the page's own styles (passed to ``launch``): the hidden box pasted pages travel through, buttons
# that keep one row, an upload box tall enough for its prompt
PAGE_CSS = """
#pasted-html { display: none !important; }
#length-row button { min-width: 0 !important; }
#upload { min-height: 120px; }
"""
# what the page is launched with, here and in the tests' server
LAUNCH_OPTIONS = dict(css=PAGE_CSS, ssr_mode=False, footer_links=["api"])

# a page pasted as markup (its source, not its rendered text) goes to the server to become its
# visible text (``Handlers.pasted``) instead of into the article box; typed text is never rewritten
PASTE_JS = """() => {
  const box = document.querySelector('#article textarea');
  const hidden = document.querySelector('#pasted-html textarea');
  if (!box || !hidden || box.dataset.pasteWatch) return;
  box.dataset.pasteWatch = '1';
  const markup = /^\\s*(<!doctype html|<html|<head|<body|<\\?xml[^>]*>\\s*<html)/i;
  box.addEventListener('paste', (e) => {
    const text = (e.clipboardData || window.clipboardData).getData('text/plain') || '';
    const paragraphs = (text.slice(0, 2048).toLowerCase().match(/<\\/p>/g) || []).length;
    if (!markup.test(text.slice(0, 512)) && paragraphs < 2) return;
    e.preventDefault();
    hidden.value = text + '\\n<!-- pasted ' + Date.now() + ' -->';   // a new value each paste
    hidden.dispatchEvent(new Event('input', {bubbles: true}));
  });
}"""


def split_questions(text: str) -> list[str]:
    """One question per non-empty line."""
    return [q.strip() for q in (text or "").splitlines() if q.strip()]


LENGTH_STEP = 1.5   # Shorter divides the word budget by this, Longer multiplies: one undoes the other


def shorter_budget(words: float) -> int:
    """The word budget after "Shorter" (within ``MAX_WORDS_RANGE``)."""
    return max(MAX_WORDS_RANGE[0], round(float(words) / LENGTH_STEP))


def longer_budget(words: float) -> int:
    """The word budget after "Longer"; ``longer_budget(shorter_budget(w)) == w`` for the budgets
    a person picks (multiples of 10 above the minimum)."""
    return min(MAX_WORDS_RANGE[1], round(float(words) * LENGTH_STEP))


def summary_markdown(s: dict) -> str:
    marked = " The sentences it took are underlined (dotted) in the article view below." if s.get("sentences") else ""
    return (f"{html.escape(s['summary'])}\n\n*Method: {s['method']}, {len(s['summary'].split())} words.{marked}*")


def summary_ranges(s: dict | None) -> list[tuple[int, int]]:
    """Character ranges of the sentences an extractive summary took (none for abstractive)."""
    return [(x["start"], x["end"]) for x in (s or {}).get("sentences") or []]


def source_line(article: Extracted, url: str | None = None) -> str:
    """What the page shows above the article: its title, author and date where the source says,
    and the link it came from."""
    parts = [f"**{html.escape(article.title)}**" if article.title else None,
             html.escape(article.author) if article.author else None, html.escape(article.date) if article.date else None,
             html.escape(url) if url else None]
    return " · ".join(p for p in parts if p)


def error_message(exc: Exception) -> str:
    return f"**{html.escape(str(exc))}**"


class Handlers:
    """The page's actions over one shared engine; each returns what the page shows and turns
    bad input into a message instead of a traceback. ``results`` and ``summary`` are the page's
    state: the last answers and summary of the article in the box, so that the article view
    marks both."""

    def __init__(self, engine: ArticleQA):
        self.engine = engine

    def ask(self, article: str, questions_text: str, top_k: int = 3, summary: dict | None = None,
            progress=gr.Progress()):
        """-> (status, answers HTML, article view HTML, results)"""
        try:
            qs = split_questions(questions_text)
            if not qs:
                raise InputError("Type a question (one per line).")
            desc = f"Reading the article for {len(qs)} question(s)"
            progress(0.0, desc=desc)
            # the reader may run on the engine's batching thread: report from this event's context
            event = contextvars.copy_context()

            def read(done: int, total: int) -> None:
                event.run(progress, (done, total), desc=desc, unit="windows")

            results = self.engine.predict_many(article, qs, int(top_k), progress=read)
            return "", render_answers(results), render_view(article, results, summary_ranges(summary)), results
        except (InputError, ModelLoadError) as exc:
            log.info("ask refused: %s", exc)
            return error_message(exc), "", "", []

    def summarize(self, article: str, max_words: int, results: list[dict] | None = None, progress=gr.Progress()):
        """-> (status, summary Markdown, article view HTML, summary)"""
        try:
            progress(0.0, desc="Summarizing")
            s = self.engine.summarize(article, int(max_words))
            return "", summary_markdown(s), render_view(article, results or [], summary_ranges(s)), s
        except (InputError, ModelLoadError) as exc:
            log.info("summarize refused: %s", exc)
            return error_message(exc), "", gr.update(), None

    def upload(self, data: bytes | None):
        """An uploaded file (text, HTML page or PDF). -> (article text, status message, source line)"""
        if data is None:
            return gr.update(), "", gr.update()
        try:
            article = load_article(bytes(data), limits=self.engine.profile.limits)
            return article.text, f"Loaded {len(article.text.split()):,} words from the file.", source_line(article)
        except InputError as exc:
            return gr.update(), error_message(exc), gr.update()

    def link(self, url: str):
        """A link the user gave (``serve.fetch``'s guards). -> (article text, status message, source line)"""
        if not (url or "").strip():
            return gr.update(), error_message(InputError("Type or paste a link (https://...).")), gr.update()
        try:
            article = load_article(url.strip(), limits=self.engine.profile.limits)
            return (article.text, f"Loaded {len(article.text.split()):,} words from the link.",
                    source_line(article, url.strip()))
        except InputError as exc:
            log.info("link refused: %s", exc)
            return gr.update(), error_message(exc), gr.update()

    @staticmethod
    def pasted(raw: str):
        """A page pasted as HTML becomes the article's visible text, as an uploaded one does
        (text that is not HTML is the article as pasted). -> (article text, status message)"""
        data = (raw or "").encode("utf-8", errors="replace")
        if not looks_like_html(data):
            return raw or "", ""
        text = extract_html(raw).text
        return text, f"Pasted HTML was turned into its visible text ({len(text.split()):,} words)."

    # API endpoints: the same dicts as the Python API; errors become gr.Error messages
    def api_answer(self, article: str, questions: str, top_k: int = 3) -> list[dict]:
        """Answer questions (one per line) about an article; one predict() result per question."""
        try:
            return self.engine.predict_many(article, split_questions(questions), int(top_k))
        except (InputError, ModelLoadError) as exc:
            log.info("answer refused: %s", exc)
            raise gr.Error(str(exc), print_exception=False) from None

    def api_summarize(self, article: str, max_words: int = 90) -> dict:
        """Summarize an article; the summarize() result."""
        try:
            return self.engine.summarize(article, int(max_words))
        except (InputError, ModelLoadError) as exc:
            log.info("summarize refused: %s", exc)
            raise gr.Error(str(exc), print_exception=False) from None


SCROLL_TO_ANSWERS = "() => document.getElementById('answers')?.scrollIntoView({behavior: 'smooth'})"


def build_app(engine: ArticleQA, status: str = "") -> gr.Blocks:
    h = Handlers(engine)
    prof = engine.profile
    with gr.Blocks(title="article-qa") as demo:
        gr.Markdown("# article-qa\nPaste, upload (text, web page, PDF) or link an article, read its summary, ask questions. "
                    f"Answers are exact spans of the article, marked where they stand, with the chance "
                    f"that each is right. Profile: **{prof.name}**. {status}")
        with gr.Row():
            with gr.Column(scale=3):
                source = gr.Markdown(elem_id="article-source")
                article = gr.Textbox(label="Article", lines=14, max_lines=30,
                                     placeholder="Paste an article here, upload a file, or use the example.",
                                     elem_id="article")
                pasted = gr.Textbox(elem_id="pasted-html", show_label=False, container=False)
                with gr.Row():
                    upload = gr.File(label="Upload .txt, .md, .html or .pdf",
                                     file_types=[".txt", ".md", ".html", ".htm", ".pdf"], type="binary", elem_id="upload")
                    example = gr.Button("Use the example article", elem_id="example-btn")
                with gr.Row():
                    link = gr.Textbox(label="Or a link to an article (web page or PDF)", placeholder="https://...",
                                      elem_id="link", scale=4)
                    fetch_btn = gr.Button("Load", elem_id="load-btn", scale=1, min_width=60)
                upload_msg = gr.Markdown(elem_id="upload-msg")
            with gr.Column(scale=2):
                words = gr.Slider(*MAX_WORDS_RANGE, value=prof.summarizer.max_words, step=1,
                                  label="Summary length (words)")
                with gr.Row(elem_id="length-row"):
                    shorter = gr.Button("Shorter", min_width=60, elem_id="shorter-btn")
                    summarize_btn = gr.Button("Summarize", variant="primary", elem_id="summarize-btn", min_width=60, scale=2)
                    longer = gr.Button("Longer", min_width=60, elem_id="longer-btn")
                summary = gr.Markdown(elem_id="summary")
        questions = gr.Textbox(label="Questions (one per line)", lines=3, elem_id="questions",
                               placeholder="What gifts were exchanged?")
        with gr.Row():
            top_k = gr.Slider(*TOP_K_RANGE, value=prof.qa.top_k, step=1, label="Candidates shown per question")
            ask = gr.Button("Ask", variant="primary", elem_id="ask-btn")
        gr.Examples([[q] for q in EXAMPLE_QUESTIONS], inputs=[questions], label="Example questions (example article)")
        status_msg = gr.Markdown(elem_id="status")
        answers = gr.HTML(elem_id="answers")
        view = gr.HTML(elem_id="article-view")
        results = gr.State([])
        summary_state = gr.State(None)

        # the public endpoints are registered first so that they own the names /answer and /summarize
        gr.api(h.api_answer, api_name="answer")
        gr.api(h.api_summarize, api_name="summarize")
        private = dict(api_visibility="private")
        # any change of the article (typing, paste, delete, upload, the example, a set from code):
        # the old article's errors, answers, summary and marks no longer apply
        cleared = [status_msg, answers, view, results, summary, summary_state]
        article.change(lambda: ("", "", "", [], "", None), None, cleared, queue=False, **private)
        article.input(lambda: "", None, upload_msg, queue=False, **private)
        demo.load(None, None, None, js=PASTE_JS, **private)
        pasted.change(h.pasted, pasted, [article, upload_msg], queue=False, **private)
        questions.input(lambda: "", None, status_msg, queue=False, **private)
        example.click(lambda: (example_article(), ""), None, [article, source], **private)
        upload.upload(h.upload, upload, [article, upload_msg, source], **private)
        for event in (fetch_btn.click, link.submit):
            event(h.link, link, [article, upload_msg, source], **private)
        summarize_args = dict(fn=h.summarize, inputs=[article, words, results],
                              outputs=[status_msg, summary, view, summary_state], show_progress_on=[summary],
                              **private)
        summarize_btn.click(**summarize_args)
        shorter.click(shorter_budget, words, words, **private).then(**summarize_args)
        longer.click(longer_budget, words, words, **private).then(**summarize_args)
        for event in (ask.click, questions.submit):
            event(h.ask, [article, questions, top_k, summary_state], [status_msg, answers, view, results],
                  show_progress_on=[answers], **private).then(None, None, None, js=SCROLL_TO_ANSWERS, **private)
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
           auth: tuple[str, str] | None = None, engine=None):
    """Serve the page for a profile; ``engine`` defaults to this process's (``get_engine``), or
    is one backed by Ray Serve replicas (``serve.ray_serve.RayEngine``)."""
    engine = engine or get_engine(profile)
    demo = build_app(engine, warm_up(engine))
    auth = auth or auth_from_env()
    demo.launch(server_name=host, server_port=port, share=False, auth=auth,
                max_file_size=engine.profile.limits.max_upload_bytes, prevent_thread_lock=True,
                quiet=True, **LAUNCH_OPTIONS)
    print(f"article-qa is ready: open http://{host}:{demo.server_port}/ in a browser (Ctrl+C stops it).", flush=True)
    if not prevent_thread_lock:
        demo.block_thread()
    return demo
