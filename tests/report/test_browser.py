"""The report opened in a real browser (headless Chromium): no console errors, every image
decodes, every table has rows, nothing overflows a phone-width page, quick mode says so and
gives no verdicts, and screenshots are saved."""

import json
import os
import re
import shutil
import subprocess

import pytest

from netsight.report.html import build_report
from netsight.suites.runner import SuiteOptions, run_suite
from netsight.suites.spec import parse_suite

SUITE = """
title = "browser <check> 'quotes' & ampersands"
seeds = 2
[[group]]
name = "cnn"
models = ["lenet5"]
data = "cifar10-assignment"
iterations = 6
eval_every = 3
analyses = ["filters", "activations"]
[[group]]
name = "rnn"
models = ["gru"]
data = "mnist"
hidden = [16, 8]
iterations = 6
eval_every = 3
analyses = ["sequence"]
"""

_PROBE_HEAD = """<script>window.__errors=[];
window.addEventListener('error',function(e){__errors.push(String(e.message||(e.target&&e.target.tagName)||'error'))},true);
var __ce=console.error;console.error=function(){__errors.push([].join.call(arguments,' '));__ce.apply(console,arguments)};</script>"""
_PROBE_TAIL = """<script>window.addEventListener('load',function(){
var imgs=[].slice.call(document.images),tables=[].slice.call(document.querySelectorAll('table'));
document.body.setAttribute('data-check',JSON.stringify({images:imgs.length,
undecoded:imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0)}).length,
tables:tables.length,empty:tables.filter(function(t){return !t.tBodies[0]||t.tBodies[0].rows.length===0}).length,
errors:__errors,overflow:document.documentElement.scrollWidth-document.documentElement.clientWidth}));});</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("CI"):
        pytest.fail("CI must install Debian's chromium for the browser test (.ci/run does)")
    pytest.skip("no Chromium on this machine (apt-get install chromium)")


_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--virtual-time-budget=10000"]


def _open(browser: str, report, tmp_path, width: int, tag: str) -> dict:
    probe = tmp_path / f"probe-{tag}.html"
    probe.write_text(report.read_text().replace("<head>", "<head>" + _PROBE_HEAD, 1).replace("</body>", _PROBE_TAIL + "</body>", 1))
    dom = subprocess.run([browser, *_FLAGS, f"--user-data-dir={tmp_path / ('profile-' + tag)}", "--enable-logging=stderr",
                          f"--window-size={width},900", "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r"data-check=\"([^\"]*)\"", dom.stdout)
    assert match, dom.stderr[-2000:]
    check = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    check["console"] = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and "error" in line.lower()]
    return check


def _screenshot(browser: str, report, tmp_path, size: str, name: str):
    shot = tmp_path / name
    subprocess.run([browser, *_FLAGS, f"--user-data-dir={tmp_path / ('shot-' + name)}", f"--screenshot={shot}",
                    f"--window-size={size}", report.as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("NETSIGHT_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, keep)


def _verdict_cells(page: str) -> list[str]:
    return re.findall(r"<td class=\"(?:matched|above|below|inconclusive)\">([^<]*)</td>", page)


def test_report_in_headless_chromium(tmp_path):
    browser = _chromium()
    run_suite(parse_suite(SUITE, "browser.toml"), tmp_path, SuiteOptions(progress=False, quick=True), report=False)
    report = build_report(tmp_path)[0]
    page = report.read_text()
    for width, tag in ((1280, "desktop"), (390, "phone")):
        check = _open(browser, report, tmp_path, width, tag)
        assert check["errors"] == [] and check["console"] == []
        assert check["images"] >= 6 and check["undecoded"] == 0
        assert check["tables"] >= 3 and check["empty"] == 0
        assert check["overflow"] <= 0, f"the page is {check['overflow']} px wider than a {width} px window"
    assert "browser &lt;check&gt; &#x27;quotes&#x27; &amp; ampersands" in page
    assert "name='viewport'" in page

    # quick mode: said in the title and a banner; no verdict anywhere
    assert "<title>browser &lt;check&gt; &#x27;quotes&#x27; &amp; ampersands — QUICK SMOKE TEST</title>" in page
    assert "class='banner'" in page and "gives no verdicts" in page
    assert _verdict_cells(page) == [] and "<th>verdict</th>" not in page
    # hidden sizes in numeric order (8 before 16), in the table and in what ran
    gru_rows = re.findall(r"<tr><td>gru</td><td class=\"num\">(\d+)</td>", page)
    assert gru_rows == ["8", "16"], gru_rows
    # the settings that ran (6 iterations, eval every 1), not only the suite file as written
    assert "Settings used" in page and re.search(r"<td>rnn</td><td>gru</td><td[^>]*>0, 1</td>", page)
    _screenshot(browser, report, tmp_path, "1280,2400", "screenshot.png")
    _screenshot(browser, report, tmp_path, "390,1600", "screenshot-phone.png")

    # the same runs as a full (non-quick) study: verdict cells appear, and 2-seed intervals this wide are inconclusive
    meta = json.loads((tmp_path / "suite.json").read_text())
    (tmp_path / "suite.json").write_text(json.dumps({**meta, "quick": False}))
    page = build_report(tmp_path)[0].read_text()
    assert "QUICK" not in page and "<th>verdict</th>" in page
    cells = _verdict_cells(page)
    assert cells and all(c.startswith(("inconclusive", "above", "below")) for c in cells), cells
