"""Check HTML reports in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``).

Selenium drives the browser with both paths given explicitly, and Selenium Manager is blocked,
so nothing downloads a browser or a driver at run time; the browser itself is kept off the
network (no background networking, no component updates, every host name unresolvable).

The report contract these checks hold pages to:

* each plot is ``<figure class="plot" data-kind="heatmap|histogram|scatter|lines|bars">`` with
  an inline ``<svg>`` that draws at least one mark (``rect``, ``circle``, ``ellipse``, ``path``,
  ``line``, ``polyline``, ``polygon``) and has a nonzero rendered size;
* highlighted text is ``<span class="tok" data-score="0.123">word</span>`` inside
  ``<div class="tokens" data-model="A|B">``;
* the page loads nothing from outside itself: every ``src``/``srcset`` and ``link[href]`` is
  absent or a ``data:`` URI (plain ``<a href>`` links are not loads and are allowed).

Use ``check_report(browser, path, name)`` (``browser`` is the session fixture in conftest.py);
it asserts all of the above plus an error-free console and saves a screenshot.
"""

from __future__ import annotations

import base64
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSTALL_HINT = ("install Debian's browser and driver (`sudo apt-get install chromium chromium-driver`; "
                ".ci/run does this where it can) and Selenium (`pip install selenium`, in the dev extras)")
PLOT_KINDS = ("heatmap", "histogram", "scatter", "lines", "bars")
MARKS = "rect, circle, ellipse, path, line, polyline, polygon"
# What to plant in a corpus to test escaping: each sets window.__xss if the page runs it.
XSS_PAYLOADS = ("<script>window.__xss=1</script>", "<img src=x onerror=\"window.__xss=1\">")

CHROME_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
    # Fully offline: no background requests, no component/extension updates, no host resolves.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--disable-domain-reliability",
    "--disable-client-side-phishing-detection", "--disable-breakpad", "--no-first-run",
    "--no-default-browser-check", "--no-pings", "--metrics-recording-only",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def find_browser() -> tuple[str, str] | str:
    """``(chromium, chromedriver)`` paths, or a sentence saying what is missing.

    ``INTERLINGUA_CHROMIUM`` / ``INTERLINGUA_CHROMEDRIVER`` override the search.
    """
    chromium = os.environ.get("INTERLINGUA_CHROMIUM") or next(
        (p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/lib/chromium/chromium")
         if p and os.access(p, os.X_OK)), None)
    driver = os.environ.get("INTERLINGUA_CHROMEDRIVER") or next(
        (p for p in (shutil.which("chromedriver"), "/usr/lib/chromium/chromedriver")
         if p and os.access(p, os.X_OK)), None)
    missing = [what for what, path in (("chromium", chromium), ("chromedriver", driver)) if not path]
    if missing:
        return f"{' and '.join(missing)} not found"
    return chromium, driver


def start_browser(chromium: str, chromedriver: str):
    """A headless Chrome WebDriver on these two binaries; Selenium Manager is never run."""
    from unittest import mock

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    refuse = mock.patch.object(SeleniumManager, "binary_paths",
                               side_effect=AssertionError("Selenium tried to look up or download a driver"))
    with refuse:
        driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_window_size(1280, 900)
    driver.set_page_load_timeout(30)
    return driver


def artifacts_dir() -> Path:
    return Path(os.environ.get("INTERLINGUA_ARTIFACTS") or REPO / ".artifacts")


@dataclass
class Page:
    """What ``open_report`` found; ``check_report`` asserts every list of problems is empty."""

    driver: object
    path: Path
    console_errors: list[str] = field(default_factory=list)
    plot_problems: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    plots: list[dict] = field(default_factory=list)  # {"kind", "marks", "width", "height"} per figure
    screenshot: Path | None = None

    def tokens(self) -> dict[str, list[tuple[str, float]]]:
        return tokens(self.driver)


def open_report(driver, path: str | Path, name: str | None = None) -> Page:
    """Load ``path`` (a local file), collect what is wrong with it, and save a screenshot.

    The screenshot goes to ``$INTERLINGUA_ARTIFACTS/screenshots/<name>.png`` (default
    ``<repo>/.artifacts/screenshots/``) when ``name`` is given.
    """
    from selenium.webdriver.support.ui import WebDriverWait

    path = Path(path).resolve()
    driver.get_log("browser")  # drop what earlier pages left
    driver.get(path.as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    page = Page(driver, path)
    page.console_errors = console_errors(driver)
    page.plots = plots(driver)
    page.plot_problems = plot_problems(page.plots)
    page.external = external_resources(driver)
    if name is not None:
        page.screenshot = screenshot(driver, name)
    return page


def check_report(driver, path: str | Path, name: str | None = None, *, kinds=()) -> Page:
    """``open_report``, then assert: no outside resources, no console errors, every plot drawn and
    non-empty, and each kind in ``kinds`` among the plots. Returns the ``Page`` for more checks."""
    page = open_report(driver, path, name)
    assert not page.external, f"{path}: loads from outside the file: {page.external}"
    assert not page.console_errors, f"{path}: console errors: {page.console_errors}"
    assert not page.plot_problems, f"{path}: plots: {page.plot_problems}"
    found = {p["kind"] for p in page.plots}
    missing = [k for k in kinds if k not in found]
    assert not missing, f"{path}: no plot of kind {missing} (found {sorted(found)})"
    return page


def console_errors(driver) -> list[str]:
    """SEVERE entries of the browser console since the last call (uncaught errors, failed loads)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def plots(driver) -> list[dict]:
    return driver.execute_script(
        """return [...document.querySelectorAll('figure.plot')].map(f => {
               const svg = f.querySelector('svg');
               const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
               return {kind: f.dataset.kind || '', svgs: f.querySelectorAll('svg').length,
                       marks: svg ? svg.querySelectorAll(arguments[0]).length : 0,
                       width: box.width, height: box.height};
           });""", MARKS)


def plot_problems(found: list[dict]) -> list[str]:
    problems = []
    for i, p in enumerate(found):
        where = f"figure.plot #{i} ({p['kind'] or 'no data-kind'})"
        if p["kind"] not in PLOT_KINDS:
            problems.append(f"{where}: data-kind should be one of {', '.join(PLOT_KINDS)}")
        if not p["svgs"]:
            problems.append(f"{where}: no <svg>")
        elif not p["marks"]:
            problems.append(f"{where}: the svg draws nothing ({MARKS})")
        if p["svgs"] and not (p["width"] > 0 and p["height"] > 0):
            problems.append(f"{where}: rendered size {p['width']}x{p['height']}")
    return problems


def external_resources(driver) -> list[str]:
    """Every load that is not a ``data:`` URI: ``src``/``srcset``/``link[href]`` attributes in the
    DOM, plus anything the browser actually fetched (resource timing)."""
    return driver.execute_script(
        """const bad = [];
           for (const el of document.querySelectorAll('[src], [srcset], link[href]')) {
               for (const attr of ['src', 'srcset', 'href']) {
                   if (attr === 'href' && el.tagName !== 'LINK') continue;
                   const v = el.getAttribute(attr);
                   if (v !== null && !v.trim().toLowerCase().startsWith('data:'))
                       bad.push(`<${el.tagName.toLowerCase()} ${attr}="${v}">`);
               }
           }
           for (const r of performance.getEntriesByType('resource'))
               if (!r.name.startsWith('data:')) bad.push(`fetched ${r.name}`);
           return bad;""")


def tokens(driver) -> dict[str, list[tuple[str, float]]]:
    """``{data-model: [(text, score), ...]}`` of every ``div.tokens``, in page order; the text is the
    span's textContent (what was written, not re-spaced), the score its ``data-score``."""
    raw = driver.execute_script(
        """return [...document.querySelectorAll('div.tokens')].map(d => [d.dataset.model,
               [...d.querySelectorAll('span.tok')].map(s => [s.textContent, s.dataset.score])]);""")
    out: dict[str, list[tuple[str, float]]] = {}
    for model, toks in raw:
        out.setdefault(model, []).extend((text, float(score)) for text, score in toks)
    return out


def screenshot(driver, name: str) -> Path:
    """Save the whole page (the viewport if the full-page capture is unavailable) as a PNG."""
    out = artifacts_dir() / "screenshots" / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": max(1, size["width"]), "height": max(1, size["height"]),
                     "scale": 1}})
        out.write_bytes(base64.b64decode(shot["data"]))
    except Exception:  # noqa: BLE001 - older drivers: fall back to the viewport
        driver.save_screenshot(str(out))
    return out


def executed(driver) -> bool:
    """Whether any planted payload (``XSS_PAYLOADS``) ran on the current page."""
    return driver.execute_script("return typeof window.__xss !== 'undefined'")


def assert_not_executed(driver) -> None:
    assert not executed(driver), "markup from the data was executed (window.__xss is set)"


def assert_shown_as_text(driver, text: str) -> None:
    shown = driver.execute_script("return document.body.innerText")
    assert text in shown, f"{text!r} is not shown as text on the page"
