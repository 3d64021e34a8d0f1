"""`netsight explore`'s recurrent mode in a real browser (headless Chromium driven by Playwright):
an LSTM run's page at 1280 and 390 px opens offline with no request and no console error,
nothing is wider than the window, every hidden unit has a tile, a unit shows its top-9 images
with the row read at its peak boxed where the page's data says, a trace under each, the mean
trace per class and the class bars in the class colours with a legend, and the LSTM's three gate
scatters; the keys, buttons, a tap and the address (#rnn/5) move between units."""

import json
import re

import pytest

from netsight.techniques import registry
from netsight.techniques.target import open_run_target
from netsight.train import resolve, train
from tests.conftest import tiny_dataset
from tests.report.test_browser import keep_screenshot, layout_problems, watch
from tests.report.test_explore_browser import OVERLAPS_JS, _unit, _wait_unit

pytestmark = pytest.mark.browser

HIDDEN = 8

# Each top-9 card: its image's box, the row mark's box, the trace below it.
CARDS_JS = """() => [...document.querySelectorAll('#detail .rpair')].map((f) => {
  const i = f.querySelector('img.digit'), r = f.querySelector('.row').getBoundingClientRect(), b = i.getBoundingClientRect();
  const s = f.querySelector('svg.spark').getBoundingClientRect();
  return {image: +i.dataset.image, step: +i.dataset.step, value: +i.dataset.value, top: b.top, height: b.height, width: b.width,
    rowTop: r.top, rowBottom: r.bottom, rowLeft: r.left, rowRight: r.right, left: b.left, right: b.right, spark: s.top - b.bottom,
    sparkWidth: s.width, ok: i.complete && i.naturalWidth === 28};
})"""


@pytest.fixture(scope="module")
def lstm_page(tmp_path_factory):
    data = tiny_dataset("mnist", n_train=32, n_test=40)
    run = tmp_path_factory.mktemp("explore-lstm") / "lstm"
    train(resolve("lstm", "mnist", iterations=4, eval_every=2, batch_size=16, hidden=HIDDEN), run, dataset=data, progress=False)
    (page,) = registry.run("explore", open_run_target(run, dataset=data))
    text = page.read_text()
    layer = json.loads(re.search(r"id='explore-data'>(.*?)</script>", text, re.S).group(1).replace("<\\/", "</"))["layers"][0]
    return page, shown(layer)


def shown(layer: dict) -> dict:
    """What the page's panels say of each unit: its top-9 (image, step, value), the steps read, the classes' colours."""
    units = []
    for u in layer["units"]:
        (cards,) = [p for p in u["panels"] if "top" in p.get("class", "").split()]
        (trace,) = [c for p in u["panels"] if p["kind"] == "chart" for c in p["charts"] if c["style"] == "classtrace"]
        data = [item["data"] for item in cards["items"]]
        units.append({"top": [{"image": int(d["image"]), "step": int(d["step"]), "value": float(d["value"])} for d in data]})
        style = layer["styles"][trace["style"]]["series"]  # each class's line settings, stored once for the layer
        colours = [{**style[i], **own}["stroke"] for i, own in enumerate(trace["series"])]
        steps = len(cards["items"][0]["charts"][0]["series"][0]["y"])
    return {"units": units, "steps": steps, "class_colours": colours, "classes": colours}


def _check_unit(page, layer: dict, unit: int) -> None:
    u = layer["units"][unit]
    assert page.get_attribute(f"#grid button[data-unit='{unit}']", "aria-selected") == "true"
    cards = page.evaluate(CARDS_JS)
    assert [(c["image"], c["step"]) for c in cards] == [(t["image"], t["step"]) for t in u["top"]]
    for c, t in zip(cards, u["top"], strict=True):
        assert c["ok"] and c["value"] == pytest.approx(t["value"], rel=1e-6)
        row = c["height"] / layer["steps"]  # the box surrounds row `step` of the image, as wide as the image
        assert c["rowTop"] <= c["top"] + t["step"] * row + 0.5 and c["rowBottom"] >= c["top"] + (t["step"] + 1) * row - 0.5, c
        assert c["rowBottom"] - c["rowTop"] < row + 6 and c["rowLeft"] <= c["left"] and c["rowRight"] >= c["right"], c
        assert 0 <= c["spark"] < 8 and c["sparkWidth"] == pytest.approx(c["width"], abs=1)
    assert len(page.query_selector_all("#detail svg.spark polyline")) == 9
    lines = page.query_selector_all("#detail svg.classtrace polyline")
    assert [line.get_attribute("stroke") for line in lines] == layer["class_colours"]  # one line per class, in its colour
    bars = page.query_selector_all("#detail svg.classbars rect")
    assert [b.get_attribute("fill") for b in bars] == layer["class_colours"]
    legend = page.evaluate(
        "[...document.querySelectorAll('#detail ul.legend')][0].querySelectorAll('li').length"
    )  # the class legend: every colour named
    assert legend == len(layer["classes"]) == 10
    scatters = page.query_selector_all("#detail svg.gate")
    assert len(scatters) == 3 and all(len(s.query_selector_all("circle.this")) == 1 for s in scatters)
    assert len(scatters[0].query_selector_all("circle")) == HIDDEN
    assert page.evaluate(OVERLAPS_JS) == []


def test_lstm_page_at_1280_px(lstm_page, tmp_path, browser):
    page_file, layer = lstm_page
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    problems, requests = watch(page)
    page.goto(page_file.as_uri())
    page.wait_for_selector("body[data-ready=true]")
    assert page.evaluate("location.hash") == "#rnn/0"
    assert [b.get_attribute("data-layer") for b in page.query_selector_all("#layers button")] == ["rnn"]
    assert len(page.query_selector_all("#grid button.unit")) == HIDDEN
    assert page.evaluate("[...document.querySelectorAll('#grid img')].every((i) => i.complete && i.naturalWidth === 28)")
    assert layout_problems(page, 1280) == []
    _check_unit(page, layer, 0)
    keep_screenshot(page, tmp_path, "explore-lstm-1280.png")
    page.keyboard.press("ArrowRight")
    assert _unit(page) == ("rnn", "1")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")  # from the first unit: wraps to the last
    assert _unit(page) == ("rnn", str(HIDDEN - 1))
    page.keyboard.press("ArrowDown")  # one layer: stays on it
    assert _unit(page) == ("rnn", str(HIDDEN - 1))
    page.click("#next")
    assert _unit(page) == ("rnn", "0")
    page.click("#grid button[data-unit='3']")
    _check_unit(page, layer, 3)
    page.evaluate("location.hash = '#rnn/5'")
    _wait_unit(page, "rnn", 5)
    _check_unit(page, layer, 5)
    page.evaluate("history.back()")
    _wait_unit(page, "rnn", 3)
    for wrong, right in [("#rnn/99", f"#rnn/{HIDDEN - 1}"), ("#conv1/2", f"#rnn/{HIDDEN - 1}"), ("#rnn/x", "#rnn/0")]:
        page.evaluate(f"location.hash = {wrong!r}")
        page.wait_for_function(f"() => location.hash === {right!r}", timeout=5000)
    assert layout_problems(page, 1280) == []
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests


def test_lstm_page_on_a_phone(lstm_page, tmp_path, browser):
    page_file, layer = lstm_page
    for width in (390, 360):
        context = browser.new_context(viewport={"width": width, "height": 844}, is_mobile=True, has_touch=True)
        page = context.new_page()
        problems, requests = watch(page)
        page.goto(page_file.as_uri() + "#rnn/2")
        page.wait_for_selector("body[data-ready=true]")
        assert _unit(page) == ("rnn", "2")
        assert layout_problems(page, width) == []
        page.tap("#grid button[data-unit='6']")
        _wait_unit(page, "rnn", 6)
        _check_unit(page, layer, 6)
        assert layout_problems(page, width) == []
        if width == 390:
            keep_screenshot(page, tmp_path, "explore-lstm-390.png")
        page.tap("#next")
        _wait_unit(page, "rnn", 7)
        page.tap("#prev")
        _wait_unit(page, "rnn", 6)
        context.close()
        assert problems == []
        assert all(url.startswith(("file:", "data:")) for url in requests), requests
