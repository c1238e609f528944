"""The README's Python examples run as written: the API block on the default profile, and the
web-endpoint block against a served page (its address swapped for the test server's)."""
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_its_two_python_examples():
    blocks = python_blocks()
    assert len(blocks) == 2 and "predict(article" in blocks[0] and "Client(" in blocks[1]


def test_the_api_example_runs_as_written(monkeypatch):
    """As written, its link answered by a stand-in for the network (fetching itself is tested in
    tests/test_sources.py against a local server; tests never reach the internet)."""
    from serve import sources
    from serve.fetch import Fetched
    from tests.test_sources import PAGE
    asked = []
    monkeypatch.setattr(sources, "fetch", lambda url, policy: asked.append(url) or Fetched(PAGE.encode(), "text/html", url))
    space: dict = {}
    exec(compile(python_blocks()[0], "README.md", "exec"), space)
    assert asked == ["https://example.org/news/1"] and space["page"].title == "Gifts at the summit"
    r, rs, s = space["r"], space["rs"], space["s"]
    assert r["answer"] and space["article"][r["start"]:r["end"]] == r["answer"]
    assert len(rs) == 2 and all("answers" in x for x in rs)
    assert s["summary"] and s["method"] == "extractive-trained"


def test_the_endpoint_example_runs_against_a_served_page(served, seed_article):
    url, _ = served
    code = python_blocks()[1].replace('"http://127.0.0.1:7860/"', repr(url))
    space: dict = {"article": seed_article}
    exec(compile(code, "README.md", "exec"), space)
    c = space["c"]
    assert c.predict(seed_article, "What gifts were exchanged?", 3, api_name="/answer")[0]["question"]
