"""The web page: handlers on the tiny profile, the served app driven with gradio_client, and a
real headless Chromium driven by Playwright."""
import html
import os
import re
from pathlib import Path

import pytest

from serve.api import get_engine, predict_many
from serve.app import Handlers, longer_budget, shorter_budget, split_questions
from models.extract import extract_html
from models.profiles import Limits
from serve.sources import load_article

from tests.helpers import CHROMIUM  # noqa: E402


def no_progress(*args, **kwargs) -> None:
    return None


def example_page(p, url: str):
    """(browser, page): Debian's chromium on the served page, the example article loaded."""
    from tests.helpers import CHROMIUM_ARGS
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)
    page.locator("#example-btn").click()
    page.wait_for_function("document.querySelector('#article textarea').value.length > 1000")
    return browser, page


def test_ask_handler_shows_answers_and_marks_them_in_the_article(tiny_profile, seed_article):
    h = Handlers(get_engine(tiny_profile))
    status, answers, view, results = h.ask(seed_article, "What did Putin give Kim?\n\nWho visited?", 3,
                                           None, progress=no_progress)
    assert status == ""
    assert [r["question"] for r in results] == ["What did Putin give Kim?", "Who visited?"]
    assert "What did Putin give Kim?" in answers and ">Q2</span> Who visited?" in answers
    first = next(r for r in results if r["answer"] is not None)
    assert html.escape(" ".join(first["answer"].split())) in answers
    assert 'id="q1-a0"' in view or first is not results[0]
    assert html.unescape(re.sub(r"<[^>]+>", "", view.split('<div class="article">', 1)[1])).replace(
        "Q1", "").replace("Q2", "") == seed_article.replace("Q1", "").replace("Q2", "")


def test_ask_reports_progress_up_to_every_window(tiny_profile, seed_article):
    seen = []
    Handlers(get_engine(tiny_profile)).ask(seed_article, "Who visited?", 3, None,
                                           progress=lambda p, **k: seen.append(p))
    reads = [p for p in seen if isinstance(p, tuple)]
    assert reads and reads[-1][0] == reads[-1][1] > 1, "ends at all windows read"
    assert [d for d, _ in reads] == sorted(d for d, _ in reads)


@pytest.mark.parametrize("article,questions,msg", [
    ("", "Who?", "The article is empty."),
    ("Some article text.", "\n \n", "Type a question"),
    ("Some article text.", "\n".join(["Who?"] * 51), "limit is 50"),
    ("Some article text.", "?!?...;;", "no letter or digit"),
])
def test_ask_handler_turns_bad_input_into_a_message(tiny_profile, article, questions, msg):
    status, answers, view, results = Handlers(get_engine(tiny_profile)).ask(article, questions, 3, None,
                                                                            progress=no_progress)
    assert msg in status and answers == "" and view == "" and results == []


def test_pasted_html_becomes_its_visible_text():
    text, msg = Handlers.pasted("<html><body><p>Putin gave Kim a limo.</p><script>x()</script>"
                                "<p>Kim gave art.</p></body></html>")
    assert text == "Putin gave Kim a limo.\n\nKim gave art." and "visible text" in msg
    unchanged, msg = Handlers.pasted("Plain text with a < sign and </p> once.")
    assert msg == "" and unchanged == "Plain text with a < sign and </p> once."     # as pasted


def test_shorter_and_longer_undo_each_other():
    for w in range(20, 1000, 10):
        assert longer_budget(shorter_budget(w)) == w
    assert shorter_budget(10) == 10 and longer_budget(1000) == 1000


def test_upload_handler(tiny_profile):
    h = Handlers(get_engine(tiny_profile))
    text, msg, source = h.upload(b"<html><head><title>T</title><style>p{}</style></head><body><p>Hello "
                                 b"<b>there</b>.</p><script>alert(1)</script><p>Second.</p></body></html>")
    assert text == "T\n\nHello there.\n\nSecond." and "Loaded" in msg and "**T**" in source
    _, msg, _ = h.upload(b"%PDF-1.7 binary")
    assert "PDF" in msg
    _, msg, _ = h.upload(b"\xff\xfe\xfd not utf8")
    assert "UTF-8" in msg


def test_html_and_upload_limits():
    assert "alert" not in extract_html("<body><p>a</p><script>alert(1)</script></body>").text
    with pytest.raises(ValueError, match="limit"):
        load_article(b"x" * 101, limits=Limits(max_upload_bytes=100))


def test_split_questions():
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
def test_browser_marks_answers_in_place_and_links_to_them(served, seed_article, tmp_path):
    """Two questions with the same answer (overlapping marks): both labels show on the mark, no
    mark starts or ends inside a word, the answer link scrolls the article to its mark."""
    from playwright.sync_api import sync_playwright
    url, engine = served
    question = "What did Putin give Kim?"
    want = engine.predict_many(seed_article, [question])[0]
    with sync_playwright() as p:
        browser, page = example_page(p, url)
        page.locator("#questions textarea").fill(f"{question}\n{question}")
        page.locator("#ask-btn").click()
        page.locator("#answers h3").first.wait_for(timeout=60_000)
        page.locator("#answer-view mark").first.wait_for(timeout=30_000)
        shown = page.locator("#answers").inner_text()
        marks = page.evaluate("""() => [...document.querySelectorAll('#answer-view mark')].map(m => {
            let prev = m.previousSibling;
            while (prev && prev.classList && prev.classList.contains('qlabel')) prev = prev.previousSibling;
            const before = prev ? prev.textContent : '';
            const after = m.nextSibling ? m.nextSibling.textContent : '';
            return {text: m.textContent, q: m.dataset.q, id: m.id,
                    before: before.slice(-1), after: after.slice(0, 1)}; })""")
        legend = page.locator("#answer-view .legend").inner_text()
        labels = page.locator("#answer-view .qlabel").all_inner_texts()
        view_box = page.locator("#answer-view .article")
        view_box.evaluate("el => el.scrollTop = el.scrollHeight")        # away from the mark
        page.locator("#answers a.answer-link").first.click()
        page.wait_for_timeout(500)
        visible = page.evaluate("""() => { const m = document.getElementById('q1-a0');
            const box = document.querySelector('#answer-view .article').getBoundingClientRect();
            const r = m.getBoundingClientRect(); return r.top >= box.top - 1 && r.bottom <= box.bottom + 1; }""")
        shot = Path(os.environ.get("ARTICLE_QA_SCREENSHOTS", tmp_path)) / "browser_answer.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        browser.close()

    def norm(t):
        return " ".join(t.split())
    assert norm(want["answer"]) in norm(shown)
    assert norm(want["answer"]) in norm(" ".join(m["text"] for m in marks))
    assert any(m["q"] == "Q1 Q2" for m in marks), "both questions' marks show on the shared answer"
    assert "Q1" in labels and "Q2" in labels
    assert legend.index("Q1.") < legend.index("Q2."), "legend in question order"
    for m in marks:
        assert not (m["before"].isalnum() and m["text"][:1].isalnum()), f"mark starts inside a word: {m}"
        assert not (m["after"].isalnum() and m["text"][-1:].isalnum()), f"mark ends inside a word: {m}"
    assert visible, "clicking the answer scrolled the article to its mark"
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


needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make "
                                    "test installs it with apt-get where it can); never downloading a browser")


@pytest.fixture
def slow_served(tiny_profile):
    """The page over a tiny reader slowed to a tenth of a second a batch of 4 windows, batching
    requests as the shipped profiles do (its reader runs on the engine's batching thread)."""
    import time

    from models.engine import ArticleQA
    from models.profiles import load_profile
    from serve.app import LAUNCH_OPTIONS, build_app
    from tests.helpers import free_port
    engine = ArticleQA(load_profile(tiny_profile, {"qa": {"batch_size": 4}, "runtime": {"batch_wait_ms": 5}}))
    engine.warm_up(summarizer=False)
    engine.reader.model.register_forward_pre_hook(lambda module, args: time.sleep(0.1))
    demo = build_app(engine)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **LAUNCH_OPTIONS)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@needs_chromium
def test_browser_progress_moves_and_is_drawn_once(slow_served):
    """During an ask the progress bar shows values strictly between 0 and 100, rising, one bar at a
    time, and the answers follow."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page = example_page(p, slow_served)
        page.locator("#questions textarea").fill("Who visited?\nWhat was signed?")
        page.evaluate("""() => { window.levels = []; window.most = 0;
            const look = () => {
                const bars = [...document.querySelectorAll('[role=progressbar]')].filter(b => b.offsetParent);
                window.most = Math.max(window.most, bars.length);
                for (const b of bars) {
                    const w = parseFloat(b.querySelector('.progress-bar')?.style.width || 'NaN');
                    if (!isNaN(w) && window.levels[window.levels.length - 1] !== w) window.levels.push(w);
                }
            };
            new MutationObserver(look).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                               characterData: true}); }""")
        page.locator("#ask-btn").click()
        page.locator("#answers h3").first.wait_for(timeout=120_000)
        levels, most = page.evaluate("window.levels"), page.evaluate("window.most")
        browser.close()
    assert any(0 < v < 100 for v in levels), f"the bar never moved: {levels}"
    assert levels == sorted(levels), levels
    assert most == 1, f"{most} progress bars drawn at once"


def _answer_and_summarize(page, question: str = "What did Putin give Kim?") -> None:
    page.locator("#questions textarea").fill(question)
    page.locator("#ask-btn").click()
    page.locator("#answers h3").first.wait_for(timeout=60_000)
    page.locator("#summarize-btn").click()
    page.locator("#summary p").first.wait_for(timeout=60_000)
    assert page.locator("#answer-view").count() == 1


def _wait_cleared(page) -> None:
    page.wait_for_function("""() => !document.querySelector('#answers h3') && !document.querySelector('#summary p')
        && !document.querySelector('#answer-view') && !(document.querySelector('#status')?.innerText.trim())""",
                           timeout=10_000)


@needs_chromium
def test_browser_every_article_change_clears_the_old_results(served, seed_article, tmp_path):
    """Typing, pasting, deleting (real key presses), uploading and the example button each clear
    the old article's answers, summary, marks and errors; pasted HTML becomes its visible text,
    HTML typed by hand stays as typed."""
    from playwright.sync_api import sync_playwright

    from tests.helpers import CHROMIUM_ARGS as args
    url, _ = served
    other = "Kim gave Putin paintings of the Russian leader.\n\nPutin gave Kim a limousine and a tea set."
    page_source = ("<html><head><title>Gifts</title><script>alert(1)</script></head><body><nav>Home</nav>"
                   "<p>Putin gave Kim a limousine.</p><p>Kim gave Putin paintings.</p></body></html>")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900},
                                      permissions=["clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.goto(url)
        box = page.locator("#article textarea")

        def paste(text: str) -> None:
            page.evaluate("t => navigator.clipboard.writeText(t)", text)
            box.click()
            page.keyboard.press("Control+A")
            page.keyboard.press("Control+V")

        page.locator("#example-btn").click()                           # the example button
        page.wait_for_function("document.querySelector('#article textarea').value.length > 1000")
        _answer_and_summarize(page)
        box.click()                                                     # delete: Ctrl+A, Backspace
        page.keyboard.press("Control+A")
        page.keyboard.press("Backspace")
        _wait_cleared(page)
        page.locator("#summarize-btn").click()                          # its error alone
        page.wait_for_function("document.querySelector('#status').innerText.includes('empty')")
        assert page.locator("#answers h3").count() == 0
        box.click()
        page.keyboard.type("Putin gave Kim a limousine.")               # typing (clears the error)
        _wait_cleared(page)
        _answer_and_summarize(page)
        paste(other)                                                    # paste
        _wait_cleared(page)
        assert box.input_value() == other
        _answer_and_summarize(page)
        box.click()
        page.keyboard.press("End")
        page.keyboard.type(" More.")                                    # typing
        _wait_cleared(page)
        _answer_and_summarize(page)
        paste(page_source)                                              # a pasted page: its visible text
        page.wait_for_function("document.querySelector('#article textarea').value.startsWith('Gifts')")
        _wait_cleared(page)
        pasted_text = box.input_value()
        assert "alert" not in pasted_text and "<" not in pasted_text and "Putin gave Kim a limousine." in pasted_text
        assert "visible text" in page.locator("#upload-msg").inner_text()
        _answer_and_summarize(page)
        page.locator("#upload input[type=file]").set_input_files(      # upload
            files=[{"name": "a.txt", "mimeType": "text/plain", "buffer": other.encode() + b" Uploaded."}])
        page.wait_for_function("document.querySelector('#article textarea').value.endsWith('Uploaded.')")
        _wait_cleared(page)
        box.click()                                                     # HTML typed by hand stays as typed
        page.keyboard.press("Control+A")
        page.keyboard.press("Backspace")
        page.keyboard.type("<html><body><p>Hi</p>")
        page.wait_for_timeout(1000)
        typed = box.input_value()
        browser.close()
    assert typed == "<html><body><p>Hi</p>"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make test installs it "
                    "with apt-get where it can); never downloading a browser")
def test_browser_progress_advances_to_every_window(served, tmp_path):
    """On a long article the page's progress moves through the windows read (not stuck at its
    first value) and reaches all of them before the answers show."""
    from playwright.sync_api import sync_playwright

    from tests.conftest import long_article
    from tests.helpers import CHROMIUM_ARGS as args
    article = long_article(words=12_000)     # about 330 windows for 2 questions: under 1,000, shown exactly
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(served[0])
        page.locator("#article textarea").fill(article)
        page.locator("#questions textarea").fill("Who visited the city?\nWhat was signed?")
        # record every progress text the page shows while it reads
        page.evaluate("""() => { window.seen = [];
            new MutationObserver(() => {
                for (const el of document.querySelectorAll('.progress-text, .meta-text, .meta-text-center')) {
                    const t = el.textContent.trim();
                    if (t && window.seen[window.seen.length - 1] !== t) window.seen.push(t);
                }
            }).observe(document.body, {subtree: true, childList: true, characterData: true}); }""")
        page.locator("#ask-btn").click()
        page.locator("#answers h3").first.wait_for(timeout=120_000)
        seen = page.evaluate("window.seen")
        browser.close()
    counts = [tuple(map(int, m)) for t in seen for m in re.findall(r"(\d+)/(\d+) windows", t)]
    assert len({done for done, _ in counts}) >= 3, f"progress did not advance: {seen}"
    assert [d for d, _ in counts] == sorted(d for d, _ in counts)
    assert counts[-1][0] == counts[-1][1], f"progress stopped short of every window: {seen}"
