"""The report opened in a real browser (headless Chromium): no console errors, every image
decodes, every table has rows, and a screenshot is saved."""

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
hidden = [8]
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
errors:__errors}));});</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("CI"):
        pytest.fail("CI must install Debian's chromium for the browser test (.ci/run does)")
    pytest.skip("no Chromium on this machine (apt-get install chromium)")


_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--virtual-time-budget=10000"]


def test_report_in_headless_chromium(tmp_path):
    browser = _chromium()
    run_suite(parse_suite(SUITE, "browser.toml"), tmp_path, SuiteOptions(progress=False), report=False)
    report = build_report(tmp_path)[0]
    page = report.read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("<head>", "<head>" + _PROBE_HEAD, 1).replace("</body>", _PROBE_TAIL + "</body>", 1))
    profile = tmp_path / "profile"
    dom = subprocess.run([browser, *_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--dump-dom",
                          probe.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r"data-check=\"([^\"]*)\"", dom.stdout)
    assert match, dom.stderr[-2000:]
    check = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert check["errors"] == []
    assert check["images"] >= 6 and check["undecoded"] == 0
    assert check["tables"] >= 3 and check["empty"] == 0
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and "error" in line.lower()]
    assert console == []
    assert "browser &lt;check&gt; &#x27;quotes&#x27; &amp; ampersands" in page
    shot = tmp_path / "screenshot.png"
    subprocess.run([browser, *_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,2400",
                    report.as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("NETSIGHT_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, keep)
