"""The explore page's code is code: one script and one stylesheet shipped as package data
(`netsight/report/pages/`), inlined into every page; the script draws generic panels and names no
technique; the numbers the Python side formats read as the script's own `fmt` writes them."""

import json
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from netsight.techniques import registry
from netsight.report import panels
from netsight.report.explore_page import asset, render_page

# Words only a technique would make the page's script say: the registry's names, and what the
# techniques show.
WORDS = {
    "recurrent", "conv", "occlusion", "occluded", "invariance", "evolution", "snapshot", "projection", "patch", "deconv",
    "randomised", "random", "rho", "sanity", "histogram", "gate", "lstm", "gru", "spark", "trace", "digit", "class_mean",
    "saturation", "top9", "preview_of", "activation", "unoccluded",
}  # fmt: skip


def _script_words() -> set[str]:
    code = re.sub(r"//[^\n]*", "", asset("explore.js"))  # the comments may explain; the code may not name
    return {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code)}


def test_the_script_names_no_technique():
    words = _script_words()
    # "explore" is the page, "units" a layer's units and "rows" a table's: the page's own words, not a technique's
    names = {n.lower() for n in registry.techniques()} - {"explore", "units", "rows"} | WORDS
    assert len(names) > 30
    assert not words & names, sorted(words & names)


def test_the_script_draws_every_panel_kind_the_docs_list():
    kinds = set(re.findall(r"^- `(\w+)`:", panels.__doc__, re.M))
    drawn = set(re.findall(r"^    (\w+): \(", asset("explore.js"), re.M))
    assert kinds == drawn == {"table", "text", "images", "heatmap", "chart", "legend", "group"}


def test_the_page_inlines_its_script_and_stylesheet():
    page = render_page("t", "s", [{"name": "a", "units": [], "images": {}, "notes": {}, "data": {}, "styles": {}}])
    assert asset("explore.js") in page and asset("explore.css") in page
    assert "default-src 'none'" in page and "<script src" not in page and "<link" not in page


@pytest.mark.skipif(shutil.which("node") is None, reason="no node here")
def test_python_numbers_read_as_the_scripts_fmt_writes_them():
    values = [0.0, 1.0, -1.5, 12.0, 99.94, 99.96, 100.0, 100.5, -100.5, 123456.7, 0.1234567, 0.0009996, 1.5e-7, -2.25e-6, 3e-5]
    js = "function fmt(v) { return Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : v.toPrecision(3); }"
    got = subprocess.run(["node", "-e", js + f"console.log(JSON.stringify({json.dumps(values)}.map(fmt)))"], capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert json.loads(got.stdout) == [panels.fmt(v) for v in values]
    assert "function fmt(v) { return Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : v.toPrecision(3); }" in asset("explore.js")


@pytest.mark.slow
def test_an_installed_package_finds_the_page_files(tmp_path):
    """A wheel of the project carries pages/explore.js and .css, and netsight installed from it reads them."""
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(root),
        ],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        pytest.skip(f"no wheel built here: {build.stderr.strip()[-300:]}")
    (wheel,) = (tmp_path / "dist").glob("netsight-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert {"netsight/report/pages/explore.js", "netsight/report/pages/explore.css"} <= set(z.namelist())
        z.extractall(tmp_path / "site")
    probe = (
        "import netsight, sys; from netsight.report.explore_page import asset; "
        "print(netsight.__file__); print(len(asset('explore.js')), len(asset('explore.css')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    where, sizes = out.stdout.split("\n")[:2]
    assert where.startswith(str(tmp_path / "site"))
    assert [int(v) for v in sizes.split()] == [len(asset("explore.js")), len(asset("explore.css"))]


def test_the_page_builder_names_no_technique():
    """`report/explore_page.py` is the page's plumbing: the panels come from the techniques' own modules
    (`Technique.explore_panels`), found through the registry; no string or import of it names a technique."""
    import ast
    from pathlib import Path

    import netsight.report.explore_page as builder

    tree = ast.parse(Path(builder.__file__).read_text())
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    strings = " ".join(
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    )
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names} | {
        n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
    }
    names = set(registry.techniques()) - {"explore", "units", "rows"}  # as above: the page's own words
    said = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", strings)}
    assert not said & (names | WORDS), sorted(said & (names | WORDS))
    assert not {i.rsplit(".", 1)[-1] for i in imported} & names
    assert len(names) > 10


def test_every_panel_comes_from_a_technique_that_applies():
    """The page asks the registry: a technique registered for a while adds its panel (after the built-in ones, in
    `registry.ORDER`) and its note to every unit of the layers of its kind, and leaves the page as it was once gone."""
    import torch

    from netsight.models import ModelConfig, build_model
    from netsight.report.explore_recurrent_page import recurrent_layer, recurrent_layer_data
    from netsight.report.panels import text
    from netsight.techniques.base import Technique, register
    from netsight.techniques.explore_recurrent_units import explore_recurrent

    class Probe(Technique):
        name = "probe_panel"
        summary = "a panel for the test"
        applies_to = "recurrent"
        compute = staticmethod(lambda: None)

        def prepare(self, t, **o):
            return {}

        def outputs(self, t, o):
            return []

        def write(self, t, o):
            return []

        def explore_panels(self, layer, unit):
            return [text(f"probe {unit} of {layer.numbers['name']}", note="probe")]

        def explore_shared(self, layer):
            return {"notes": {"probe": "a note"}}

    torch.manual_seed(0)
    model = build_model(ModelConfig("lstm", hidden=4)).eval()
    units = explore_recurrent(model, torch.rand(12, 1, 28, 28), torch.arange(12) % 10)
    data = recurrent_layer_data(units, [f"{i}.png" for i in range(12)], None)
    before = recurrent_layer(data)
    register(Probe)
    try:
        probed = recurrent_layer(data)
    finally:
        registry.unregister("probe_panel")
    assert [u["panels"][-1] for u in probed["units"]] == [
        {"kind": "text", "text": f"probe {h} of rnn", "note": "probe"} for h in range(4)
    ]
    assert [u["panels"][:-1] for u in probed["units"]] == [u["panels"] for u in before["units"]]
    assert probed["notes"] == {**before["notes"], "probe": "a note"}
    assert recurrent_layer(data) == before
