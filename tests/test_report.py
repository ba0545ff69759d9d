"""report.html: one self-contained page a person opens, checked in a real headless browser
(Chromium driven by Playwright): every experiment's section and picture, the table's links,
failures first, nothing fetched from anywhere."""
import re
import struct
import subprocess
import sys

import pytest

from harness.driving import ExperimentResult
from harness.judging import Check, combine
from harness.report import write_report
from harness.report.plots import grid, group_pairs, write_plot
from harness.sampling import Sample
from tests.tools import tool

EXPERIMENTS = 40  # the "a session of 40 experiments stays readable"


def made_result(name: str, held: list[int], passed: bool = True) -> ExperimentResult:
    samples = [Sample(t=i * 0.05, round=1 + i // 20, cycle=i, in_flight=i % 3, in_flight_peak=2, established=h,
                      time_wait=i // 2, close_wait=0, other=0, server_established=h,
                      label="round_end" if i == 19 else "") for i, h in enumerate(held)]
    result = ExperimentResult(name=name, scenario="tcp_count", target=name, settings={}, samples=samples,
                              complete=True, duration_s=1.5)
    result.verdict = combine(None, None, [Check("kept sockets", passed, "kept 3 -> 9" if not passed else "kept 2")])
    return result


def session_of_40() -> list[ExperimentResult]:
    results = []
    for i in range(EXPERIMENTS // 2):
        results.append(made_result(f"tcp_count-lib{i}-faulty", list(range(40)), passed=i % 7 != 3))
        results.append(made_result(f"tcp_count-lib{i}-fixed", [2] * 40, passed=i != 11))
    results.append(made_result("tcp_count-<nothing & sampled>", []))  # odd characters, and no picture
    return results


def test_the_page_has_every_experiment_failures_first_and_no_outside_reference(tmp_path):
    results = session_of_40()
    page = write_report(results, tmp_path, "forty <experiments>").read_text()
    ids = re.findall(r'<section id="([^"]+)"', page)
    assert len(ids) == len(results) == len(set(ids))
    failed = [r.name for r in results if not r.passed]
    assert len(failed) == 4
    order = re.findall(r"<h2>([^<]+):", page)
    assert order[:len(failed)] == failed  # failures first, in the order they ran
    assert "forty &lt;experiments&gt;" in page and "tcp_count-&lt;nothing &amp; sampled&gt;" in page
    assert page.count('src="data:image/svg+xml;base64,') == len(results) - 1  # the unsampled one says so instead
    assert "no picture: nothing was sampled" in page
    # self-contained: no script, stylesheet, image or font from anywhere else
    assert not re.search(r'(src|href)="(https?:|//|file:)', page) and "@import" not in page and "url(" not in page
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # atomically: no temp file left


@pytest.fixture(scope="module")
def browser():
    chromium = tool("chromium", "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        # the flags this machine's closed network needs (no background connections, no sandbox as root)
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            yield launched
        finally:
            launched.close()


def test_a_browser_shows_every_section_and_picture(tmp_path, browser):
    results = session_of_40()
    path = write_report(results, tmp_path, "forty experiments")
    page = browser.new_page()
    fetched = []
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    sections = page.eval_on_selector_all("section", """sections => sections.map(s => ({
        id: s.id, title: s.querySelector('h2').textContent,
        images: Array.from(s.querySelectorAll('img')).map(i => [i.complete, i.naturalWidth, i.naturalHeight])}))""")
    assert len(sections) == len(results)
    for section, result in zip(sorted(sections, key=lambda s: s["title"]), sorted(results, key=lambda r: r.name + ":")):
        assert section["title"].startswith(result.name + ":"), section["title"]
        if result.samples:
            assert section["images"] == [[True, 640, 250]], section  # the SVG decoded and drawn at its size
        else:
            assert section["images"] == []
    links = page.eval_on_selector_all("#results a", "links => links.map(a => a.getAttribute('href'))")
    assert sorted(links) == sorted("#" + s["id"] for s in sections)  # every row leads to its section
    first_rows = page.eval_on_selector_all("#results tr td:nth-child(2)", "cells => cells.map(c => c.textContent)")
    assert first_rows[:4] == ["FAILED"] * 4 and set(first_rows[4:]) == {"passed"}
    assert [url for url in fetched if not url.startswith(("file:", "data:"))] == []  # nothing from the network
    page.goto(path.as_uri() + "#" + sections[-1]["id"])  # an anchor scrolls to its section
    assert page.evaluate("window.scrollY") > 0
    page.close()


def test_a_real_run_writes_the_report_and_says_where(tmp_path):
    done = subprocess.run([sys.executable, "-m", "harness", "run", "stdlib-faulty", "--cycles", "4", "--rounds", "2",
                           "--results-dir", str(tmp_path), "--plots", "off"],
                          capture_output=True, text=True, timeout=120)
    assert f"report: {tmp_path / 'report.html'}" in done.stdout.splitlines()[-1], done.stdout
    page = (tmp_path / "report.html").read_text()
    assert 'id="experiment-tcp_count-stdlib-faulty"' in page and "verdict: growth" in page


def test_forty_experiments_make_a_grid_not_a_column(tmp_path):
    groups = group_pairs(session_of_40()[:EXPERIMENTS])
    rows = grid(groups)
    assert len(rows) == 7 and {len(row) for row in rows} == {6}  # 40 panels: 6 wide, 7 tall
    for row in rows:  # a pair never split: faulty beside its fixed
        names = [r.name for r in row if r is not None]
        assert [n.rsplit("-", 1)[0] for n in names[0::2]] == [n.rsplit("-", 1)[0] for n in names[1::2]]
    png = write_plot(session_of_40()[:EXPERIMENTS], tmp_path / "grid.png", "forty").read_bytes()
    width, height = struct.unpack(">II", png[16:24])
    assert 2000 < width < 3000 and 1200 < height < 2000  # at 90 dpi: panels of 468 x 234 px, a screen or two
    assert len(grid(group_pairs(session_of_40()[:2]))) == 1  # one pair: one row


def test_the_legend_fits_the_picture_however_narrow():
    from harness.report.plots import LEGEND_CHAR_W, LEGEND_HANDLE_W, LINE_LABELS, _legend_shape
    labels = list(LINE_LABELS.values())
    for width in (5.2, 10.4, 31.2):
        rows, columns = _legend_shape(labels, width)
        assert rows * columns >= len(labels)
        assert columns * (max(map(len, labels)) * LEGEND_CHAR_W + LEGEND_HANDLE_W) <= width  # whole, not cut
    assert _legend_shape(labels, 31.2) == (1, 3) and _legend_shape(labels, 5.2)[1] == 1
