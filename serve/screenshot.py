"""Screenshot of the page answering a question on the example article (for the README):

    python -m serve.screenshot --profile embedded --question "What gifts were exchanged?" --out docs/screenshot.png
    python -m serve.screenshot --width 800 --out /tmp/narrow.png      # the layout on a narrow window

Serves the app in-process on a loopback port Gradio finds free and drives Debian's headless chromium with
Playwright (never a downloaded browser)."""
from __future__ import annotations

import argparse
import sys

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m serve.screenshot", description=__doc__)
    p.add_argument("--profile", default="embedded")
    p.add_argument("--question", default="What gifts were exchanged?")
    p.add_argument("--out", default="docs/screenshot.png")
    p.add_argument("--width", type=int, default=1280, help="the browser window's width in pixels")
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from serve.app import launch
    demo = launch(args.profile, "127.0.0.1", None, prevent_thread_lock=True)
    port = demo.server_port
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": args.width, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#example-btn").click()
            page.wait_for_function("document.querySelector('#article textarea').value.length > 1000")
            page.locator("#summarize-btn").click()
            page.locator("#summary p").first.wait_for(timeout=120_000)
            page.locator("#questions textarea").fill(args.question)
            page.locator("#ask-btn").click()
            page.locator("#answers h3").first.wait_for(timeout=120_000)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        demo.close()
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
