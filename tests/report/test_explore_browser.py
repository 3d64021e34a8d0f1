"""`netsight explore`'s page in a real browser (headless Chromium driven by Playwright), at 1280 and
390 px: it opens offline with no request and no console error, nothing is wider than the window,
a click or tap shows the unit's top-9 images and projections as the run's tables/top9 file lists
them (each patch above its projection, same size) and below them the same projections through
random weights with their rank correlation (one picture under each column, the number stated), the keys, the previous/next buttons and a swipe
move between units, the page follows its address (#layer/unit typed, Back/Forward) and corrects an
invalid one in place, and the mini-plots' labels never overlap."""

import contextlib
import csv
import io
import re
from pathlib import Path

import pytest
from PIL import Image

from netsight.cli import main
from netsight.data import load_dataset
from tests.conftest import small_part
from tests.report.test_browser import keep_screenshot, layout_problems, watch

pytestmark = pytest.mark.browser

# Pairs of text labels inside one mini-plot whose boxes overlap (an axis label on a tick, ...).
OVERLAPS_JS = """() => {
  const out = [];
  for (const svg of document.querySelectorAll('#detail svg')) {
    const boxes = [...svg.querySelectorAll('text')].map((t) => [t.textContent, t.getBoundingClientRect()]);
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const [a, r] = boxes[i], [b, q] = boxes[j];
      if (r.left < q.right - 0.5 && q.left < r.right - 0.5 && r.top < q.bottom - 0.5 && q.top < r.bottom - 0.5)
        out.push(svg.getAttribute('class') + ': ' + a + ' / ' + b);
    }
    const frame = svg.getBoundingClientRect();
    for (const [a, r] of boxes)
      if (r.left < frame.left - 0.5 || r.right > frame.right + 0.5 || r.top < frame.top - 0.5 || r.bottom > frame.bottom + 0.5)
        out.push(svg.getAttribute('class') + ': ' + a + ' is cut by the plot\\'s edge');
  }
  return out;
}"""

# Each top-9 patch with its projection: same size, the projection right below it, in rank order.
PAIRS_JS = """() => [...document.querySelectorAll('#detail .pair')].map((f) => {
  const p = f.querySelector('img.patch').getBoundingClientRect(), q = f.querySelector('img.projection').getBoundingClientRect();
  return {w: p.width, h: p.height, qw: q.width, qh: q.height, dx: q.left - p.left, gap: q.top - p.bottom, top: p.top, left: p.left};
})"""


def course_tree(folder: Path) -> Path:
    """A fifth of the bundled course set's test images (20 of each class, evenly spaced: 200) and one training image of
    each class, as the PNG tree `--data-root` reads (the same pixels: 28 x 28 grey, lossless)."""
    data = small_part(load_dataset("cifar10-assignment"), 10, 200)
    for split, images, labels in (("Train", data.train_images, data.train_labels), ("Test", data.test_images, data.test_labels)):
        for i, (image, label) in enumerate(zip(images, labels.tolist(), strict=True)):
            (folder / split / str(label)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0].numpy()).save(folder / split / str(label) / f"Image{i:05d}.png")
    return folder


@pytest.fixture(scope="module")
def explore_run(tmp_path_factory, tiny_runs):
    root = tmp_path_factory.mktemp("explore")
    run = tiny_runs.copy("lenet5", root / "lenet")  # 12 iterations, snapshots at 3 and 6
    # 200 test images, not the course set's 1,000: what the page shows of a unit (its top 9, their projections,
    # occlusion, invariance, evolution) is as much on any number of images; the passes over all of them (top 9 for
    # each layer and snapshot, the strongest image) cost a fifth, ~9 s of CPU less
    data = ["--data-root", str(course_tree(root / "assignment"))]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["inspect", str(run), "--top9", "--layer", "conv2", *data]) == 0
        assert main(["explore", str(run), "--featureviz", "--steps", "4", *data]) == 0
    assert str(run / "explore.html") in printed.getvalue()
    return run


def _unit(page) -> tuple[str, str]:
    return page.get_attribute("#detail", "data-layer"), page.get_attribute("#detail", "data-unit")


def _wait_unit(page, layer: str, unit: int) -> None:
    page.wait_for_function(
        f"() => document.querySelector('#detail').dataset.layer === '{layer}' && "
        f"document.querySelector('#detail').dataset.unit === '{unit}'",
        timeout=5000,
    )


def _check_plots(page) -> None:
    assert page.evaluate(OVERLAPS_JS) == []
    texts = page.evaluate("[...document.querySelectorAll('#detail svg.histogram text')].map((t) => t.textContent)")
    assert "strongest response per image" in texts and "images" in texts and len(texts) >= 7, texts  # labels and ticks
    bars = page.query_selector_all("#detail .occlusion svg.colorbar")
    assert len(bars) == len(page.query_selector_all("#detail .occlusion img.heat")) >= 1
    for bar in bars:  # a colour bar with the map's min and max beside every occlusion map
        assert bar.query_selector("linearGradient") and len(bar.query_selector_all("text")) == 2
    pairs = page.evaluate(PAIRS_JS)
    assert len(pairs) == 9
    for p in pairs:
        assert p["w"] == pytest.approx(p["qw"], abs=0.5) and p["h"] == pytest.approx(p["qh"], abs=0.5) and p["w"] >= 50, p
        assert abs(p["dx"]) < 0.5 and 0 <= p["gap"] < 8, p
    rows = sorted({round(p["top"]) for p in pairs})
    for top in rows:  # a grid: every row of pairs starts at the same left edge, columns of equal width
        lefts = [p["left"] for p in pairs if round(p["top"]) == top]
        assert lefts == sorted(lefts)
    assert [p["left"] for p in pairs if round(p["top"]) == rows[-1]][0] == pytest.approx(pairs[0]["left"], abs=0.5)
    _check_random(page)


# The row of projections through random weights: one under each top-9 column, same images, same size.
RANDOM_JS = """() => {
  const top = [...document.querySelectorAll('#detail .pair img.projection')], rand = [...document.querySelectorAll('#detail img.randomised')];
  return {top: top.map((i) => [i.dataset.image, i.getBoundingClientRect().width, i.getBoundingClientRect().left]),
    rand: rand.map((i) => [i.dataset.image, i.getBoundingClientRect().width, i.getBoundingClientRect().left, i.naturalWidth]),
    captions: rand.map((i) => i.parentElement.querySelector('figcaption').textContent),
    rho: document.querySelector('#detail p.rho') && document.querySelector('#detail p.rho').textContent,
    value: document.querySelector('#detail p.rho') && document.querySelector('#detail p.rho').dataset.rho};
}"""


def _check_random(page) -> None:
    got = page.evaluate(RANDOM_JS)
    # in the first layer a projection is the unit's filter whatever the image, and the page says so
    verdict = "in the first layer .+" if page.get_attribute("#detail", "data-layer") == "conv1" else "these pictures .+"
    assert len(got["rand"]) == len(got["top"]) == 9
    for (image, width, left), (r_image, r_width, r_left, natural) in zip(got["top"], got["rand"], strict=True):
        assert r_image == image and r_width == pytest.approx(width, abs=0.5) and r_left == pytest.approx(left, abs=0.5)
        assert natural > 0
    match = re.fullmatch(
        r"projections through random weights: ρ = (-?\d\.\d\d|–) — (" + verdict + "|no projection .+)", got["rho"]
    )
    assert match, got["rho"]
    if match.group(1) != "–":  # the number shown is the unit's, and the mean of the nine per-image values under it
        assert float(match.group(1)) == pytest.approx(float(got["value"]), abs=0.005)
        per_image = [float(c.split("ρ ")[1]) for c in got["captions"] if not c.endswith("–")]
        assert per_image and sum(per_image) / len(per_image) == pytest.approx(float(got["value"]), abs=0.01)


def _check_address(page) -> None:
    """The page follows its address, Back/Forward walk the units visited, an invalid one is corrected."""
    page.evaluate("location.hash = '#conv2/5'")
    _wait_unit(page, "conv2", 5)
    assert page.get_attribute("#grid button[data-unit='5']", "aria-selected") == "true"
    page.evaluate("location.hash = '#conv1/7'")
    _wait_unit(page, "conv1", 7)
    page.evaluate("history.back()")
    _wait_unit(page, "conv2", 5)
    page.evaluate("history.forward()")
    _wait_unit(page, "conv1", 7)
    for wrong, right, unit in [
        ("#conv2/999", "#conv2/63", ("conv2", 63)),
        ("#conv2/banana", "#conv2/0", ("conv2", 0)),
        ("#conv1/-4", "#conv1/0", ("conv1", 0)),
        ("#conv2/05", "#conv2/5", ("conv2", 5)),
        ("#conv9/3", "#conv2/5", ("conv2", 5)),
        ("#%E0%A4%A", "#conv2/5", ("conv2", 5)),
        ("#", "#conv2/5", ("conv2", 5)),
        ("#<script>/1", "#conv2/5", ("conv2", 5)),
    ]:
        page.evaluate(f"location.hash = {wrong!r}")
        page.wait_for_function(f"() => location.hash === {right!r}", timeout=5000)
        assert _unit(page) == (unit[0], str(unit[1])), wrong
    before = page.evaluate("history.length")
    page.click("#next") if page.evaluate("innerWidth") > 600 else page.tap("#next")
    _wait_unit(page, "conv2", 6)
    assert page.evaluate("location.hash") == "#conv2/6" and page.evaluate("history.length") == before + 1
    page.evaluate("history.back()")  # a button press is a visit too
    _wait_unit(page, "conv2", 5)


def test_explore_page_at_1280_px(explore_run, tmp_path, browser):
    page_file = explore_run / "explore.html"
    assert page_file.stat().st_size < 15e6
    with open(explore_run / "tables" / "top9_conv2.csv") as f:
        table = list(csv.DictReader(f))

    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    problems, requests = watch(page)
    page.goto(page_file.as_uri())
    page.wait_for_selector("body[data-ready=true]")
    assert page.evaluate("location.hash") == "#conv1/0"  # no address: the first unit, and the bar says so
    assert [b.get_attribute("data-layer") for b in page.query_selector_all("#layers button")] == ["conv1", "conv2"]
    assert len(page.query_selector_all("#grid button.unit")) == 32
    assert layout_problems(page, 1280) == []

    page.keyboard.press("ArrowDown")  # to conv2
    assert page.get_attribute("#detail", "data-layer") == "conv2"
    assert len(page.query_selector_all("#grid button.unit")) == 64
    for unit in (0, 17, 63):
        page.click(f"#grid button[data-unit='{unit}']")
        assert page.get_attribute("#detail", "data-unit") == str(unit)
        assert page.get_attribute(f"#grid button[data-unit='{unit}']", "aria-selected") == "true"
        patches = page.query_selector_all("#detail img.patch")
        projections = page.query_selector_all("#detail img.projection")
        assert len(patches) == len(projections) == 9
        expected = [r for r in table if int(r["map"]) == unit]
        assert [int(img.get_attribute("data-image")) for img in patches] == [int(r["image"]) for r in expected]
        assert [int(img.get_attribute("data-image")) for img in projections] == [int(r["image"]) for r in expected]
        for img, row in zip(patches, expected, strict=True):
            assert float(img.get_attribute("data-activation")) == pytest.approx(float(row["activation"]), rel=1e-5)
        assert page.evaluate("[...document.querySelectorAll('#detail img')].every(i => i.complete && i.naturalWidth > 0)")
        assert len(page.query_selector_all("#detail img.evolution")) == 3  # snapshots 3, 6 and the final weights
        assert len(page.query_selector_all("#detail svg.invariance")) == 3
        optimised = page.query_selector_all("#detail img.featureviz")  # the optimised image, the strongest image
        assert len(optimised) == 2 and "strongest image: " in page.inner_text("#detail .featureviz")
        _check_plots(page)
        pairs = page.evaluate(PAIRS_JS)
        assert len({round(p["top"]) for p in pairs}) == 1  # at 1280 px the nine pairs stand in one row
    page.keyboard.press("ArrowRight")  # from the last unit: wraps to the first
    assert page.get_attribute("#detail", "data-unit") == "0"
    page.keyboard.press("ArrowLeft")
    assert page.get_attribute("#detail", "data-unit") == "63"
    page.click("#prev")
    assert _unit(page) == ("conv2", "62")
    page.click("#next")
    assert _unit(page) == ("conv2", "63")
    page.keyboard.press("ArrowUp")  # back to conv1, the unit clamped to its 32 maps
    assert page.get_attribute("#detail", "data-layer") == "conv1" and page.get_attribute("#detail", "data-unit") == "31"
    assert page.evaluate("location.hash") == "#conv1/31"
    _check_random(page)  # a first-layer unit: its random row says a projection there is the filter
    page.reload()  # the address brings the same unit back
    page.wait_for_selector("body[data-ready=true]")
    assert page.get_attribute("#detail", "data-unit") == "31"
    page.click("#layers button[data-layer='conv2']")
    assert _unit(page) == ("conv2", "31")
    _check_address(page)
    assert layout_problems(page, 1280) == []
    keep_screenshot(page, tmp_path, "explore-1280.png")
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests


def test_explore_page_on_a_phone(explore_run, tmp_path, browser):
    page_file = explore_run / "explore.html"
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    problems, requests = watch(page)
    page.goto(page_file.as_uri() + "#conv2/3")  # opened from a link to a unit
    page.wait_for_selector("body[data-ready=true]")
    assert _unit(page) == ("conv2", "3")
    assert layout_problems(page, 390) == []
    keep_screenshot(page, tmp_path, "explore-390.png")
    tiles = page.evaluate("[...document.querySelectorAll('#grid button.unit')].map((b) => b.getBoundingClientRect().right)")
    assert len(tiles) == 64 and max(tiles) <= 390  # the whole grid is on the screen's width, none cut
    for button in page.query_selector_all("#layers button, #prev, #next"):  # the layer picker and the buttons fit too
        box = button.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] >= 30, box

    page.tap("#grid button[data-unit='12']")
    _wait_unit(page, "conv2", 12)
    # the details scrolled into sight, their top just below the sticky bar (not under it)
    page.wait_for_function(
        "() => { const gap = document.querySelector('#detail').getBoundingClientRect().top - "
        "document.querySelector('#bar').getBoundingClientRect().bottom; return gap >= 0 && gap < 24; }",
        timeout=5000,
    )
    assert page.evaluate("location.hash") == "#conv2/12"
    assert layout_problems(page, 390) == []
    _check_plots(page)
    keep_screenshot(page, tmp_path, "explore-390-unit.png", full_page=False)  # what the tap shows

    page.tap("#next")
    _wait_unit(page, "conv2", 13)
    page.tap("#prev")
    _wait_unit(page, "conv2", 12)
    page.tap("#layers button[data-layer='conv1']")
    _wait_unit(page, "conv1", 12)
    page.tap("#layers button[data-layer='conv2']")
    _wait_unit(page, "conv2", 12)

    cdp = context.new_cdp_session(page)

    def swipe(dx: float, dy: float) -> None:  # a finger on the details, moved in six steps
        box = page.evaluate(
            "(() => { const r = document.querySelector('#detail').getBoundingClientRect();"
            " return [r.left, Math.max(r.top, 0) + 120]; })()"
        )
        x, y = (300 if dx < 0 else 60), box[1]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        for i in range(1, 7):
            cdp.send(
                "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x + dx * i / 6, "y": y + dy * i / 6}]}
            )
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    swipe(-180, 10)  # to the left: the next unit
    _wait_unit(page, "conv2", 13)
    swipe(180, -8)  # to the right: the previous one
    _wait_unit(page, "conv2", 12)
    swipe(-30, 0)  # too short
    swipe(-60, 200)  # mostly down: a scroll, not a swipe
    page.wait_for_timeout(300)
    assert _unit(page) == ("conv2", "12")
    page.evaluate("history.back()")  # Back walks the units visited, swipes included
    _wait_unit(page, "conv2", 13)
    page.evaluate("history.forward()")
    _wait_unit(page, "conv2", 12)

    _check_address(page)
    page.tap("#to-grid")  # back up to the grid, its selected tile focused
    page.wait_for_function(
        "() => document.activeElement.dataset.unit === '5' && document.activeElement.getBoundingClientRect().top < innerHeight",
        timeout=5000,
    )
    assert layout_problems(page, 390) == []
    context.close()
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
