"""docs/developers.md's "Adding a technique" runs as written: its module is executed as if it were
`netsight/techniques/activity.py` (registering the technique for this test only), then its test runs,
`registry.run` on a LeNet5 with random weights; the registry is as it was afterwards."""

from __future__ import annotations

import re
from pathlib import Path

from netsight.techniques import registry

DOCS = Path(__file__).resolve().parents[2] / "docs" / "developers.md"


def _blocks() -> tuple[str, str, str]:
    """(the module, the ORDER lines, the test) of the section, in the order it shows them."""
    section = DOCS.read_text().split("## Adding a technique", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(python|text)\n(.*?)```", section, re.S)
    assert [kind for kind, _ in blocks] == ["python", "text", "python"], "the section shows: module, ORDER line, test"
    return blocks[0][1], blocks[1][1], blocks[2][1]


def test_the_docs_technique_runs_end_to_end(tmp_path):
    module, order, test = _blocks()
    before = list(registry.techniques())
    declared = re.search(r'^    name = "(\w+)"', module, re.M)
    assert declared, "the module declares its name"
    name = declared.group(1)
    assert f'    "{name}",' in order and name not in before  # the registration line names it; it is not built in
    try:
        as_if_in_the_package = {"__name__": f"netsight.techniques.{name}", "__package__": "netsight.techniques"}
        exec(compile(module, str(DOCS), "exec"), as_if_in_the_package)
        assert list(registry.techniques()) == [*before, name]  # registered by @register, after the ORDER ones
        space: dict = {"__name__": f"tests.techniques.test_{name}"}
        exec(compile(test, str(DOCS), "exec"), space)
        space[f"test_{name}"](tmp_path)
    finally:
        registry.unregister(name)
    assert list(registry.techniques()) == before
