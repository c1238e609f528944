"""Articles from links, files and bytes (serve/sources.py, serve/fetch.py, models/extract.py).
Real traffic goes to 127.0.0.1 only: every refusal of another address is checked with a fake
resolver, before any connection (a guard fails the test if one is opened)."""
import http.server
import socket
import threading
import time
from pathlib import Path

import pytest

from eval.extraction import pdf_of
from models.examples import example_article
from models.extract import extract, extract_html
from models.profiles import Limits
from models.text import InputError, body_end
from serve import fetch as fetch_module
from serve.fetch import FetchPolicy, fetch
from serve.sources import load_article

PAGE = ("<!doctype html><html><head><title>Gifts at the summit</title>"
        "<meta name='author' content='A. Reporter'><meta name='date' content='2024-06-20'>"
        "<script>alert(1)</script></head><body><nav><a href='/'>Home</a> <a href='/world'>World</a></nav>"
        "<article><h1>Gifts at the summit</h1><p>Putin gave Kim a Russian-made Aurus limousine, a tea set and a "
        "naval officer's dagger during the visit to Pyongyang.</p><p>Kim's gifts to Putin included artworks "
        "depicting the Russian leader and a bust of him, the state news agency said on Thursday.</p></article>"
        "<footer>Copyright 2024. All rights reserved. Subscribe to our newsletter.</footer></body></html>")


FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")    # what pdf_of sets text in, where present
make_pdf = pdf_of          # the PDFs eval --set pdf-extraction reads: paragraphs as a word processor sets them


class Site:
    """A local web server: path -> (status, headers, body, delay before answering, delay a chunk)."""

    def __init__(self, routes: dict):
        self.routes, self.hits = routes, []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):
                site.hits.append(self.path)
                status, headers, body, wait, drip = site.routes.get(self.path, (404, {}, b"", 0, 0))
                time.sleep(wait)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    for i in range(0, len(body), 65536):
                        self.wfile.write(body[i:i + 65536])
                        time.sleep(drip)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def site():
    s = Site({})
    yield s
    s.close()


@pytest.fixture
def no_connection_out(monkeypatch):
    """Fail the test if a connection to anything but 127.0.0.1 is opened."""
    real = socket.socket.connect

    def connect(sock, address):
        assert address[0] in ("127.0.0.1", "::1"), f"a connection to {address} was opened"
        return real(sock, address)
    monkeypatch.setattr(socket.socket, "connect", connect)


LOCAL = FetchPolicy(allow_private=True)


def html_route(body: str | bytes, ctype: str = "text/html; charset=utf-8", **kw) -> tuple:
    data = body.encode() if isinstance(body, str) else body
    return (200, {"Content-Type": ctype, "Content-Length": str(len(data))}, data, kw.get("wait", 0), kw.get("drip", 0))


def test_a_link_gives_the_pages_main_text_and_metadata(site):
    site.routes["/news"] = html_route(PAGE)
    article = load_article(site.url("/news"), limits=Limits(fetch_private_addresses=True))
    assert article.kind == "html" and article.title == "Gifts at the summit"
    assert "Putin gave Kim a Russian-made Aurus limousine" in article.text and "artworks" in article.text
    for junk in ("Home", "Copyright", "newsletter", "alert"):
        assert junk not in article.text


def test_a_pdf_link_gives_its_text(site):
    site.routes["/paper.pdf"] = html_route(make_pdf("Putin gave Kim a limousine.\n\nKim gave Putin artworks."),
                                           "application/pdf")
    article = load_article(site.url("/paper.pdf"), limits=Limits(fetch_private_addresses=True))
    assert article.kind == "pdf" and "Putin gave Kim a limousine." in article.text


def test_loopback_is_refused_by_default_without_a_request(site):
    site.routes["/news"] = html_route(PAGE)
    with pytest.raises(InputError, match="private, loopback"):
        load_article(site.url("/news"), limits=Limits())
    assert site.hits == []


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.10", "172.16.5.5", "169.254.169.254", "100.64.0.1",
                                     "240.0.0.1", "::1", "fd00::1", "fe80::1", "0.0.0.0", "224.0.0.1"])
def test_names_of_private_and_reserved_addresses_are_refused_before_connecting(monkeypatch, no_connection_out,
                                                                               address):
    monkeypatch.setattr(fetch_module, "resolve", lambda host, port: [address])
    with pytest.raises(InputError, match="not fetched"):
        fetch("http://innocent.example/article")


def test_a_name_with_one_private_address_among_public_ones_is_refused(monkeypatch, no_connection_out):
    monkeypatch.setattr(fetch_module, "resolve", lambda host, port: ["93.184.216.34", "10.0.0.8"])
    with pytest.raises(InputError, match="not fetched"):
        fetch("https://mixed.example/")


@pytest.mark.parametrize("url,msg", [("file:///etc/passwd", "file://"), ("ftp://example.org/a.txt", "http"),
                                     ("http:///nohost", "no host"), ("javascript:alert(1)", "path|http|No such")])
def test_other_schemes_are_refused(url, msg, no_connection_out):
    with pytest.raises(InputError, match=msg):
        load_article(url, limits=Limits())


def test_a_redirect_to_a_private_address_is_refused_before_following_it(site, monkeypatch, no_connection_out):
    """The first hop is taken as public (the test's server, named public.example); it redirects to a
    name that resolves to a private address: refused, that address never contacted."""
    names = {"public.example": ["127.0.0.1"], "internal.example": ["10.0.0.7"]}
    monkeypatch.setattr(fetch_module, "resolve", lambda host, port: names[host])
    real_check = fetch_module.check_address
    monkeypatch.setattr(fetch_module, "check_address",
                        lambda a, allow: None if a == "127.0.0.1" else real_check(a, allow))
    site.routes["/start"] = (302, {"Location": "http://internal.example/secret"}, b"", 0, 0)
    site.routes["/page"] = html_route(PAGE)
    site.routes["/hop"] = (301, {"Location": "/page"}, b"", 0, 0)
    with pytest.raises(InputError, match="private, loopback"):
        fetch(site.url("/start", "public.example"))
    assert fetch(site.url("/hop", "public.example")).url.endswith("/page")      # a public redirect is followed
    assert site.hits == ["/start", "/hop", "/page"]


def test_too_many_redirects(site):
    site.routes["/a"] = (302, {"Location": "/b"}, b"", 0, 0)
    site.routes["/b"] = (302, {"Location": "/a"}, b"", 0, 0)
    with pytest.raises(InputError, match="redirected more than 5"):
        fetch(site.url("/a"), LOCAL)


def test_the_size_cap_holds_with_and_without_a_stated_length(site):
    big = b"<html><body>" + b"<p>word</p>" * 200_000 + b"</body></html>"
    site.routes["/stated"] = html_route(big)
    site.routes["/unstated"] = (200, {"Content-Type": "text/html"}, big, 0, 0)
    policy = FetchPolicy(allow_private=True, max_bytes=1_000_000)
    for path in ("/stated", "/unstated"):
        with pytest.raises(InputError, match="over the limit of 1,000,000 bytes"):
            fetch(site.url(path), policy)


def test_the_time_outs_hold(site):
    site.routes["/silent"] = html_route(PAGE, wait=3)
    site.routes["/drip"] = (200, {"Content-Type": "text/html"}, b"<p>x</p>" * 60_000, 0, 0.3)
    policy = FetchPolicy(allow_private=True, timeout_s=1.0)
    for path in ("/silent", "/drip"):
        t0 = time.monotonic()
        with pytest.raises(InputError, match="within 1 s|longer than 1 s"):
            fetch(site.url(path), policy)
        assert time.monotonic() - t0 < 2.5


def test_other_content_types_are_refused(site):
    site.routes["/bin"] = html_route(b"\x00\x01", "application/octet-stream")
    with pytest.raises(InputError, match="not a web page, PDF or text"):
        fetch(site.url("/bin"), LOCAL)
    site.routes["/gone"] = (404, {}, b"", 0, 0)
    with pytest.raises(InputError, match="404"):
        fetch(site.url("/gone"), LOCAL)


def test_an_unreachable_site_is_one_line(monkeypatch):
    def nowhere(host, port, *a, **k):
        raise socket.gaierror(socket.EAI_NONAME, "no network")
    monkeypatch.setattr(socket, "getaddrinfo", nowhere)
    with pytest.raises(InputError, match="Could not find news.example"):
        fetch("https://news.example/a")


def seed_page() -> str:
    """The seed article as a news site serves it: navigation, scripts, its body, the site's
    "Check Also" block, a comment form and a footer around it."""
    import html
    seed = example_article()
    body = seed[:body_end(seed)]
    title, *paras = body.split("\n\n")
    ps = "".join(f"<p>{html.escape(p)}</p>" for p in paras)
    return ("<!doctype html><html><head><title>" + html.escape(title) + " | World News</title>"
            "<script>var ads = [];</script><style>body{}</style></head><body>"
            "<header><nav><ul><li><a href='/'>Home</a></li><li><a href='/world'>World</a></li>"
            "<li><a href='/asia'>Asia</a></li></ul></nav></header>"
            f"<main><article><h1>{html.escape(title)}</h1><div class='entry-content'>{ps}</div></article>"
            "<div class='related'><h3>Check Also</h3><a href='/aleppo'>Insurgents Advance from Aleppo, Assad Vows "
            "Defeat</a><p>On Saturday, thousands of Syrian insurgents captured most of Aleppo …</p></div>"
            "<div id='respond'><h3>Leave a Reply</h3><form><p>Your email address will not be published.</p>"
            "</form></div></main><footer><p>© 2024 World News. All rights reserved.</p></footer>"
            "<script>track();</script></body></html>")


def test_the_seed_article_as_a_web_page_is_its_body():
    seed = example_article()
    article = extract(seed_page().encode())
    assert article.text == seed[:body_end(seed)]                 # headline and paragraphs, nothing else
    assert article.title == seed.split("\n\n")[0]
    for junk in ("Check Also", "Aleppo", "Leave a Reply", "All rights reserved", "Home", "track"):
        assert junk not in article.text


def test_the_seed_article_as_a_pdf_keeps_its_paragraphs():
    seed = example_article()
    body = seed[:body_end(seed)]
    text = extract(make_pdf(body)).text
    if FONT.exists():
        assert text == body
    else:
        assert text.split("\n\n") == body.encode("latin-1", "replace").decode("latin-1").split("\n\n")


def test_a_pdf_without_text_is_refused_with_a_message():
    from fpdf import FPDF
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 50, style="F")        # drawn, no text: as a scan is to a reader
    with pytest.raises(InputError, match="no text layer"):
        extract(bytes(pdf.output()))


def test_paths_and_bytes(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(PAGE, encoding="utf-8")
    assert "Aurus limousine" in load_article(path, limits=Limits()).text
    assert load_article(PAGE.encode(), limits=Limits()).title == "Gifts at the summit"
    with pytest.raises(InputError, match="No such file"):
        load_article(tmp_path / "missing.txt", limits=Limits())
    assert extract_html("<p>Fragment only.</p>").text == "Fragment only."


def test_the_page_loads_a_link_and_a_pdf_upload_with_their_titles(site, tiny_profile):
    from models.engine import ArticleQA
    from models.profiles import load_profile
    from serve.app import Handlers
    site.routes["/news"] = html_route(PAGE)
    allowed = Handlers(ArticleQA(load_profile(tiny_profile, {"limits": {"fetch_private_addresses": True}})))
    text, msg, source = allowed.link(site.url("/news"))
    assert "Aurus limousine" in text and "from the link" in msg and "Gifts at the summit" in source
    text, msg, source = allowed.upload(make_pdf("Putin gave Kim a limousine.\n\nKim gave Putin artworks."))
    assert text == "Putin gave Kim a limousine.\n\nKim gave Putin artworks." and "Loaded" in msg
    default = Handlers(ArticleQA(load_profile(tiny_profile)))
    text, msg, _ = default.link(site.url("/news"))
    assert "not fetched" in msg and not isinstance(text, str)            # the article box is left as it was
    _, msg, _ = default.link("  ")
    assert "link" in msg


def test_corpus_mode_reads_a_folder_of_pages_pdfs_and_text(tmp_path, tiny_profile):
    from models.engine import get_engine
    from serve.batch import read_articles, run_corpus
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "a.html").write_text(PAGE, encoding="utf-8")
    (folder / "b.pdf").write_bytes(make_pdf("Kim gave Putin artworks depicting the Russian leader."))
    (folder / "c.txt").write_text("Putin gave Kim a tea set.", encoding="utf-8")
    (folder / "d.pdf").write_bytes(b"%PDF-1.4 broken")
    (folder / "notes.json").write_text("{}", encoding="utf-8")              # not an article file: skipped
    got = dict(read_articles(folder))
    assert list(got) == ["a.html", "b.pdf", "c.txt", "d.pdf"]
    assert "Aurus" in got["a.html"] and "Copyright" not in got["a.html"] and "artworks" in got["b.pdf"]
    assert isinstance(got["d.pdf"], InputError)
    questions = tmp_path / "q.txt"
    questions.write_text("What was given?\n", encoding="utf-8")
    counts = run_corpus(get_engine(tiny_profile), folder, questions, tmp_path / "out.jsonl", progress=False)
    assert counts["rows"] == 4 and counts["errors"] == 1


def test_inline_markup_stays_inside_its_sentence():
    """Bold, italics, links and headings inside the article: words stay on their line, sentences
    whole, a literal asterisk kept, no formatting marks left."""
    text = extract_html("<html><body><article><h2>The gifts</h2><p>Putin gave <b>Kim</b> a <i>limo</i> and "
                        "<a href='/x'>a tea set</a>. Scores were 5 * 3 and a*b.</p><ul><li>one dagger</li></ul>"
                        "<p>A second paragraph that is long enough for the extractor to keep it.</p>"
                        "</article></body></html>").text
    assert "Putin gave Kim a limo and a tea set. Scores were 5 * 3 and a*b." in text.split("\n\n")
    assert "The gifts" in text.split("\n\n") and "**" not in text and "\\" not in text
