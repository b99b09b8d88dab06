"""The headless-browser harness (tests/browser.py) on pages written here: it passes a good page
and catches each fault it exists to catch. Skips with a message without chromium/chromedriver."""

from __future__ import annotations

import html

import pytest
from browser import (
    XSS_PAYLOADS,
    assert_not_executed,
    assert_shown_as_text,
    check_report,
    executed,
    open_report,
)

SVG = '<svg width="200" height="100" viewBox="0 0 200 100">{}</svg>'
BAR = '<rect x="10" y="20" width="30" height="80" fill="steelblue"/>'


def page(tmp_path, body: str, name: str = "page.html"):
    path = tmp_path / name
    path.write_text(f'<!doctype html><html><head><meta charset="utf-8"><title>t</title></head>'
                    f"<body>{body}</body></html>", encoding="utf-8")
    return path


def figure(kind: str, inner: str) -> str:
    return f'<figure class="plot" data-kind="{kind}">{SVG.format(inner)}</figure>'


@pytest.fixture(autouse=True)
def artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERLINGUA_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path / "artifacts"


def test_good_page_passes(browser, tmp_path, artifacts):
    body = (figure("bars", BAR) + figure("lines", '<polyline points="0,0 50,50 100,20" stroke="black"/>')
            + '<div class="tokens" data-model="A"><span class="tok" data-score="0.5">Hello</span>'
              '<span class="tok" data-score="-1.25"> wörld &lt;b&gt;</span></div>'
            + '<div class="tokens" data-model="B"><span class="tok" data-score="0">x</span></div>'
            + '<a href="https://example.org/">a link is not a load</a>'
            + '<img alt="" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">')
    p = check_report(browser, page(tmp_path, body), "good", kinds=("bars", "lines"))
    assert [(f["kind"], f["marks"]) for f in p.plots] == [("bars", 1), ("lines", 1)]
    assert all(f["width"] > 0 and f["height"] > 0 for f in p.plots)
    assert p.tokens() == {"A": [("Hello", 0.5), (" wörld <b>", -1.25)], "B": [("x", 0.0)]}
    assert p.screenshot == artifacts / "screenshots" / "good.png"
    assert p.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_js_error_is_a_console_error(browser, tmp_path):
    path = page(tmp_path, figure("bars", BAR) + "<script>throw new Error('planted failure')</script>")
    p = open_report(browser, path)
    assert any("planted failure" in e for e in p.console_errors), p.console_errors
    with pytest.raises(AssertionError, match="console errors"):
        check_report(browser, path)


def test_empty_or_missing_plots_fail(browser, tmp_path):
    body = (figure("heatmap", "") + figure("scatter", '<g><text x="1" y="10">no marks</text></g>')
            + '<figure class="plot" data-kind="bars"></figure>'
            + '<figure class="plot" data-kind="histogram"><svg width="0" height="0">' + BAR + "</svg></figure>"
            + figure("pie", BAR))
    p = open_report(browser, page(tmp_path, body))
    assert p.plot_problems == [
        "figure.plot #0 (heatmap): the svg draws nothing (rect, circle, ellipse, path, line, polyline, polygon)",
        "figure.plot #1 (scatter): the svg draws nothing (rect, circle, ellipse, path, line, polyline, polygon)",
        "figure.plot #2 (bars): no <svg>",
        "figure.plot #3 (histogram): rendered size 0x0",
        "figure.plot #4 (pie): data-kind should be one of heatmap, histogram, scatter, lines, bars",
    ]
    with pytest.raises(AssertionError, match="plots"):
        check_report(browser, page(tmp_path, figure("heatmap", ""), "one.html"))
    with pytest.raises(AssertionError, match=r"no plot of kind \['scatter'\]"):
        check_report(browser, page(tmp_path, figure("bars", BAR), "two.html"), kinds=("bars", "scatter"))


@pytest.mark.parametrize("tag", [
    '<script src="https://cdn.example.org/plot.js"></script>',
    '<link rel="stylesheet" href="http://example.org/style.css">',
    '<img src="https://example.org/logo.png" alt="">',
    '<img src="logo.png" alt="">',
])
def test_outside_resources_fail(browser, tmp_path, tag):
    p = open_report(browser, page(tmp_path, figure("bars", BAR) + tag))
    assert p.external, tag
    with pytest.raises(AssertionError, match="loads from outside"):
        check_report(browser, p.path)


def test_planted_markup_is_detected_and_escaped_markup_is_text(browser, tmp_path):
    for i, payload in enumerate(XSS_PAYLOADS):
        open_report(browser, page(tmp_path, f"<p>{payload}</p>", f"raw{i}.html"))
        assert executed(browser), f"the control missed raw {payload!r}"
        with pytest.raises(AssertionError, match="executed"):
            assert_not_executed(browser)

    escaped = "".join(f"<p>{html.escape(x)}</p>" for x in XSS_PAYLOADS)
    p = check_report(browser, page(tmp_path, figure("bars", BAR) + escaped, "escaped.html"))
    assert_not_executed(browser)
    for payload in XSS_PAYLOADS:
        assert_shown_as_text(browser, payload)
    assert not p.external  # the escaped <img src=x> is text, not an element
