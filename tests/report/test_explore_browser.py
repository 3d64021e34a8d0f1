"""`netsight explore`'s page in a real browser (headless Chromium driven by Playwright): it opens
offline with no request and no console error, a click shows the unit's top-9 images and
projections as the run's tables/top9 file lists them, and the keyboard moves between units and layers."""

import csv

import pytest

from netsight.cli import main
from netsight.train import resolve, train
from tests.conftest import tiny_dataset
from tests.report.test_browser import _chromium

pytestmark = pytest.mark.slow

_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync"]


def test_explore_page_in_chromium(tmp_path, capsys):
    from playwright.sync_api import sync_playwright

    browser_path = _chromium()
    run = tmp_path / "lenet"
    train(resolve("lenet5", "cifar10-assignment", iterations=12, eval_every=6, batch_size=16, snapshots=[4, 8]), run,
          dataset=tiny_dataset("cifar10-assignment"), progress=False)
    assert main(["inspect", str(run), "--top9", "--layer", "conv2"]) == 0
    assert main(["explore", str(run)]) == 0
    page_file = run / "explore.html"
    assert str(page_file) in capsys.readouterr().out
    assert page_file.stat().st_size < 15e6
    with open(run / "tables" / "top9_conv2.csv") as f:
        table = list(csv.DictReader(f))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        problems, requests = [], []
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_file.as_uri())
        page.wait_for_selector("body[data-ready=true]")
        assert [b.get_attribute("data-layer") for b in page.query_selector_all("#layers button")] == ["conv1", "conv2"]
        assert len(page.query_selector_all("#grid button.unit")) == 32

        page.keyboard.press("ArrowDown")  # to conv2
        assert page.get_attribute("#detail", "data-layer") == "conv2"
        assert len(page.query_selector_all("#grid button.unit")) == 64
        for unit in (0, 17, 63):
            page.click(f"#grid button[data-unit='{unit}']")
            assert page.get_attribute("#detail", "data-unit") == str(unit)
            patches = page.query_selector_all("#detail img.patch")
            projections = page.query_selector_all("#detail img.projection")
            assert len(patches) == len(projections) == 9
            expected = [r for r in table if int(r["map"]) == unit]
            assert [int(img.get_attribute("data-image")) for img in patches] == [int(r["image"]) for r in expected]
            assert [int(img.get_attribute("data-image")) for img in projections] == [int(r["image"]) for r in expected]
            for img, row in zip(patches, expected):
                assert float(img.get_attribute("data-activation")) == pytest.approx(float(row["activation"]), rel=1e-5)
            assert page.evaluate("[...document.querySelectorAll('#detail img')].every(i => i.complete && i.naturalWidth > 0)")
            assert len(page.query_selector_all("#detail img.evolution")) == 3  # snapshots 4, 8 and the final weights
            assert len(page.query_selector_all("#detail svg.invariance")) == 3
        page.keyboard.press("ArrowRight")  # from the last unit: wraps to the first
        assert page.get_attribute("#detail", "data-unit") == "0"
        page.keyboard.press("ArrowLeft")
        assert page.get_attribute("#detail", "data-unit") == "63"
        page.keyboard.press("ArrowUp")  # back to conv1, the unit clamped to its 32 maps
        assert page.get_attribute("#detail", "data-layer") == "conv1" and page.get_attribute("#detail", "data-unit") == "31"
        assert page.evaluate("location.hash") == "#conv1/31"
        page.reload()  # the address brings the same unit back
        page.wait_for_selector("body[data-ready=true]")
        assert page.get_attribute("#detail", "data-unit") == "31"
        browser.close()
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
