"""The web page: handlers on the tiny profile, the served app driven with gradio_client, and a
real headless Chromium driven by Playwright."""
import os
from pathlib import Path

import pytest

from serve.api import get_engine, predict_many
from serve.app import Handlers, highlight, split_questions
from serve.upload import html_to_text, upload_to_text

from tests.helpers import CHROMIUM  # noqa: E402


def test_ask_handler_shows_answers_and_highlights(tiny_profile, seed_article):
    h = Handlers(get_engine(tiny_profile))
    md, hl, results = h.ask(seed_article, "What did Putin give Kim?\n\nWho visited?", 3, progress=lambda *a, **k: None)
    assert [r["question"] for r in results] == ["What did Putin give Kim?", "Who visited?"]
    assert "Q1. What did Putin give Kim?" in md and "Q2. Who visited?" in md
    assert " ".join(results[0]["answer"].split()) in md
    assert hl["text"] == seed_article
    first = hl["entities"][0]
    assert seed_article[first["start"]:first["end"]] in {a["answer"] for r in results for a in r["answers"]}


@pytest.mark.parametrize("article,questions,msg", [
    ("", "Who?", "The article is empty."),
    ("Some article text.", "\n \n", "Type a question"),
    ("Some article text.", "\n".join(["Who?"] * 51), "limit is 50"),
])
def test_ask_handler_turns_bad_input_into_a_message(tiny_profile, article, questions, msg):
    md, hl, results = Handlers(get_engine(tiny_profile)).ask(article, questions, 3, progress=lambda *a, **k: None)
    assert msg in md and hl is None and results == []


def test_upload_handler(tiny_profile):
    h = Handlers(get_engine(tiny_profile))
    text, msg = h.upload(b"<html><head><title>T</title><style>p{}</style></head><body><p>Hello <b>there</b>.</p>"
                         b"<script>alert(1)</script><p>Second.</p></body></html>")
    assert text == "T\n\nHello there.\n\nSecond." and "Loaded" in msg
    _, msg = h.upload(b"%PDF-1.7 binary")
    assert "PDF" in msg
    _, msg = h.upload(b"\xff\xfe\xfd not utf8")
    assert "UTF-8" in msg


def test_html_and_upload_limits():
    assert "alert" not in html_to_text("<body><p>a</p><script>alert(1)</script></body>")
    with pytest.raises(ValueError, match="limit"):
        upload_to_text(b"x" * 101, max_bytes=100, max_chars=1000)


def test_highlight_skips_overlaps():
    res = [{"answers": [{"selected": True, "start": 0, "end": 5}, {"selected": False, "start": 7, "end": 9}]},
           {"answers": [{"selected": True, "start": 3, "end": 8}, {"selected": True, "start": 10, "end": 12}]}]
    assert highlight("x" * 20, res)["entities"] == [{"entity": "Q1", "start": 0, "end": 5},
                                                     {"entity": "Q2", "start": 10, "end": 12}]
    assert split_questions(" a \n\n b\n") == ["a", "b"]


def test_gradio_client_matches_predict(served, tiny_profile, seed_article):
    from gradio_client import Client
    url, _ = served
    c = Client(url, verbose=False)
    qs = ["What gifts were exchanged?", "Who is Kim's sister?"]
    got = c.predict(seed_article, "\n".join(qs), 3, api_name="/answer")
    want = predict_many(seed_article, qs, 3, profile=tiny_profile)
    assert [g["answer"] for g in got] == [w["answer"] for w in want]
    assert [(g["start"], g["end"]) for g in got] == [(w["start"], w["end"]) for w in want]
    s = c.predict(seed_article, 40, api_name="/summarize")
    assert s["method"] == "abstractive" and s["summary"]
    with pytest.raises(Exception, match="The article is empty"):
        c.predict("", "Who?", 3, api_name="/answer")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make test installs it "
                    "with apt-get where it can); never downloading a browser")
def test_browser_asks_and_reads_the_highlighted_answer(served, seed_article, tmp_path):
    from playwright.sync_api import sync_playwright
    url, engine = served
    question = "What did Putin give Kim?"
    want = engine.predict_many(seed_article, [question])[0]
    from tests.helpers import CHROMIUM_ARGS as args
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(url)
        page.locator("#example-btn").click()
        page.wait_for_function("document.querySelector('#article textarea').value.length > 1000")
        page.locator("#questions textarea").fill(question)
        page.locator("#ask-btn").click()
        page.locator("#answers h3").first.wait_for(timeout=60_000)
        marks = page.locator("#highlighted .textspan.hl, #highlighted mark, #highlighted [class*='hl']")
        marks.first.wait_for(timeout=30_000)
        shown = page.locator("#answers").inner_text()
        highlighted = " ".join(marks.all_inner_texts())
        shot = Path(os.environ.get("ARTICLE_QA_SCREENSHOTS", tmp_path)) / "browser_answer.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    def norm(t):
        return " ".join(t.split())
    assert norm(want["answer"]) in norm(shown)
    assert norm(want["answer"]) in norm(highlighted)
    assert shot.stat().st_size > 10_000


def test_login_required_when_auth_is_set(tiny_profile, seed_article, monkeypatch):
    from gradio_client import Client
    from serve.app import launch
    from tests.helpers import free_port
    port = free_port()
    monkeypatch.setenv("ARTICLE_QA_AUTH", "reader:s3cret")
    demo = launch(tiny_profile, "127.0.0.1", port, prevent_thread_lock=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(Exception):
            Client(url, verbose=False).predict(seed_article, "Who?", 3, api_name="/answer")
        with pytest.raises(Exception):
            Client(url, auth=("reader", "wrong"), verbose=False)
        r = Client(url, auth=("reader", "s3cret"), verbose=False).predict(seed_article, "Who?", 3, api_name="/answer")
        assert r[0]["question"] == "Who?"
    finally:
        demo.close()


def test_default_binding_is_loopback_without_share(tiny_profile, monkeypatch):
    from serve.app import launch
    from tests.helpers import free_port
    monkeypatch.delenv("ARTICLE_QA_AUTH", raising=False)
    demo = launch(tiny_profile, port=free_port(), prevent_thread_lock=True)
    try:
        assert demo.server_name == "127.0.0.1"
        assert not demo.share and demo.share_url is None
    finally:
        demo.close()
