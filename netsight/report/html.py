"""The study report: OUT/report.html (self-contained: figures embedded, readable offline,
printable) and OUT/report.md, built from the run directories alone.

The content is a list of blocks (headings, paragraphs, tables, figures) rendered twice,
to HTML and to Markdown, so the two never disagree. Every user-supplied string (suite
title, run names) is escaped.

The technique parts are a loop over the registry (`Doc.techniques`): each technique that a run's
record says ran (`techniques.inspection.ran`) adds its report items for the options it ran with. A
figure or linked file the report expects and cannot find becomes a visible note saying which
command makes it again, and `build_report` lists it (with NETSIGHT_STRICT_REPORT=1, as in the tests,
it then fails).
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..techniques.base import Ran, ReportItem, Technique
from ..fileio import read_json, write_text
from ..text import plural
from ..train.steps import TRAIN_EVAL_IMAGES
from .stats import Summary, summarize
from .study_recurrent import inside_recurrent
from .study import (
    COLUMN_TITLES,
    REPORT_RNN_ACCURACY,
    ConfigGroup,
    comparison_rows,
    find_runs,
    group_configs,
    plot_accuracy_vs_parameters,
    plot_curves_panels,
    plot_gradient_flow,
    plot_rows_read,
    plot_train_test_bands,
)


@dataclass
class Block:
    kind: str  # h1 | h2 | h3 | p | banner | table | figure | pre | link | missing
    text: str = ""
    header: Sequence[str] = ()
    rows: Sequence[Sequence[object]] = ()
    path: Optional[Path] = None
    caption: str = ""
    fold: bool = False  # an h3 whose content (up to the next heading) is a collapsed <details>


@dataclass
class Doc:
    blocks: list[Block] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)  # the figures and files it expected and did not find

    def h(self, level: int, text: str, fold: bool = False) -> None:
        """A heading; `fold` (h3): its content, up to the next heading, is collapsed until the reader opens it."""
        self.blocks.append(Block(f"h{level}", text, fold=fold))

    def p(self, text: str) -> None:
        self.blocks.append(Block("p", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]], caption: str = "") -> None:
        self.blocks.append(Block("table", header=header, rows=rows, caption=caption))

    def figure(self, path: Path, caption: str, rerun: str = "") -> None:
        """The figure at `path`; a missing one is a visible note (`rerun`: the command that makes it again)."""
        if path.is_file():
            self.blocks.append(Block("figure", path=path, caption=caption))
        else:
            self._missing("figure", path, rerun)

    def _missing(self, what: str, path: Path, rerun: str) -> None:
        self.missing.append(path)
        self.blocks.append(Block("missing", what, path=path, caption=f"rerun `{rerun}`" if rerun else ""))

    def pre(self, text: str) -> None:
        self.blocks.append(Block("pre", text))

    def bullets(self, items: Sequence[str], caption: str = "") -> None:
        """A list of sentences (`caption`: a line under it)."""
        self.blocks.append(Block("ul", rows=[[i] for i in items], caption=caption))

    def contents(self) -> None:
        """Where the table of contents goes: a linked list of the h2 (and h3) headings, made when rendered."""
        self.blocks.append(Block("toc"))

    def banner(self, text: str) -> None:
        self.blocks.append(Block("banner", text))

    def link(self, path: Path, text: str, rerun: str = "") -> None:
        """A paragraph linking a file beside the report (relative, so the folder can move); a missing one is a note."""
        if path.is_file():
            self.blocks.append(Block("link", text, path=path))
        else:
            self._missing("file", path, rerun)

    def items(self, items: Sequence[ReportItem], rerun: str = "", notes: Optional[dict] = None) -> None:
        """A technique's report items as blocks (`rerun`: the command that makes its files again); `notes` adds
        a sentence to the caption of a figure (figure path -> sentence)."""
        for item in items:
            if item.kind == "figure" and item.path is not None:
                note = (notes or {}).get(item.path, "")
                self.figure(item.path, item.text + (" " + note if note else ""), rerun)
            elif item.kind == "p":
                self.p(item.text)
            elif item.kind == "link" and item.path is not None:
                self.link(item.path, item.text, rerun)
            elif item.kind == "table" and item.path is not None and not item.path.is_file():
                self._missing("table", item.path, rerun)
            elif item.kind == "table":
                self.table(item.header, item.rows, item.text)

    def techniques(self, run, label: str, section: str, notes: Optional[dict] = None) -> list[str]:
        """The report items of every registered technique of `section` that `run`'s record says ran, for the
        options it ran with, in registration order: the names of those techniques."""
        from ..techniques.inspection import ran

        done = ran(run.path)
        shown = []
        for t in techniques_of(section):
            if t.name in done:
                self.items(t.report(run, label, done[t.name]), rerun_command(t, run.path, done[t.name]), notes)
                shown.append(t.name)
        return shown


def techniques_of(section: str) -> list[Technique]:
    """The registered techniques whose report items go to section `section`, in registration order."""
    from ..techniques.registry import techniques

    return [t for t in techniques().values() if t.section == section]


def rerun_command(t: Technique, folder: Path, ran: Ran) -> str:
    """The command that writes `t`'s files in `folder` again with the options it ran with."""
    if not t.flag:
        return f"netsight {t.name} {folder}"
    declared = {o.name: o for o in t.options}
    given = {k: v for k, v in ran.options.items() if k in declared and v is not None and v != declared[k].default}
    flags = [f"{declared[k].flag} {','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in given.items()]
    return " ".join([f"netsight inspect {folder} --{t.name}", *flags])


_CSS = """
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45;overflow-wrap:break-word}
h1{border-bottom:2px solid #444;font-size:clamp(1.45em,5.5vw,2em);line-height:1.2}h2{border-bottom:1px solid #aaa;margin-top:2em;font-size:clamp(1.25em,4.5vw,1.5em);line-height:1.25}
.banner{background:#fff3cd;border:2px solid #d39e00;border-radius:4px;padding:.7em 1em;font-weight:600}
.missing{background:#fdecea;border:2px solid #b00;border-radius:4px;padding:.5em 1em;color:#600}
.table-wrap{overflow-x:auto;max-width:100%;margin:.6em 0 0;-webkit-overflow-scrolling:touch;
background:linear-gradient(to right,#fff 30%,rgba(255,255,255,0)) left/2em 100% no-repeat local,
linear-gradient(to left,#fff 30%,rgba(255,255,255,0)) right/2em 100% no-repeat local,
radial-gradient(farthest-side at 0 50%,rgba(0,0,0,.22),transparent) left/.6em 100% no-repeat scroll,
radial-gradient(farthest-side at 100% 50%,rgba(0,0,0,.22),transparent) right/.6em 100% no-repeat scroll}
.table-wrap:focus-visible{outline:2px solid #05a;outline-offset:2px}
table{border-collapse:collapse;font-size:.85em}th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;overflow-wrap:normal;word-break:normal;hyphens:manual}
td{white-space:nowrap}.nw{white-space:nowrap}td.text,td.matched,td.above,td.below,td.inconclusive{white-space:normal;min-width:13em;max-width:28em}
th{background:#f0f0f0;vertical-align:bottom}td.num,th.num{text-align:right}
.caption{font-size:.85em;color:#555;margin:.3em 0 1.2em}
.table-wrap.bare{margin-bottom:1.2em}
figure{margin:1em 0;page-break-inside:avoid;break-inside:avoid}figure img{max-width:100%;height:auto;border:1px solid #ddd;display:block}
figure img.zoomable{cursor:zoom-in}figure img.zoomable:focus-visible{outline:2px solid #05a;outline-offset:2px}figcaption{font-size:.85em;color:#555}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.8em}.below{color:#b00}.above{color:#070}.matched{color:#05a}.inconclusive{color:#777}
#lightbox{border:0;padding:0;margin:0;width:100%;height:100%;max-width:none;max-height:none;background:#181818;color:#eee}
#lightbox[open]{display:flex;flex-direction:column}#lightbox::backdrop{background:rgba(0,0,0,.6)}
#lightbox .lb-bar{display:flex;gap:.5em;justify-content:flex-end;padding:.5em .7em;flex:none}
#lightbox .lb-caption{flex:none;margin:0;padding:.5em .8em;font-size:.85em;line-height:1.35;max-height:30vh;overflow:auto}
#lightbox button{font:inherit;font-size:.9em;padding:.35em .8em;border:1px solid #999;border-radius:4px;background:#333;color:#fff;cursor:pointer;flex:none}
#lightbox .lb-view{flex:1;overflow:auto;display:flex;min-height:0;touch-action:pan-x pan-y pinch-zoom}
#lightbox .lb-view img{margin:auto;display:block;background:#fff;max-width:none;cursor:zoom-out;flex:none}
#lightbox.fit .lb-view img{max-width:100%;max-height:100%;object-fit:contain;cursor:zoom-in}
nav.toc{background:#f6f8fa;border:1px solid #d0d7de;border-radius:4px;padding:.5em 1em;margin:1em 0;font-size:.92em}
nav.toc .toc-title{font-weight:600;margin:.2em 0}nav.toc ol{margin:.2em 0;padding-left:0;list-style:none}nav.toc ol.sub{padding-left:1.2em}nav.toc ol.sub{font-size:.92em;columns:2 16em}
nav.toc a{text-decoration:none;color:#05a;display:inline-block;padding:.12em 0}nav.toc a:hover{text-decoration:underline}
ul.headline{background:#eef6ee;border-left:4px solid #2a7a2a;padding:.6em 1em .6em 2em;margin:1em 0}ul.headline li{margin:.25em 0}
details.fold{border:1px solid #ddd;border-radius:4px;margin:.8em 0;padding:0 .8em}details.fold[open]{padding-bottom:.5em}
details.fold>summary{cursor:pointer;list-style-position:outside;margin-left:1em;padding:.2em 0}
details.fold>summary h3{display:inline;font-size:1.1em;margin:0}details.fold>summary::marker{color:#555}
.totop{position:fixed;right:.6em;bottom:.6em;background:#fff;border:1px solid #aaa;border-radius:4px;padding:.2em .6em;font-size:.8em;color:#05a;text-decoration:none;opacity:.92}
h2,h3,details.fold{scroll-margin-top:.5em}
@media (max-width:600px){nav.toc ol.sub{columns:1}body{margin:1em auto;line-height:1.4}table{font-size:.8em}td.text,td.matched,td.above,td.below,td.inconclusive{min-width:11em}}
@media print{body{max-width:none}.totop{display:none}h2{page-break-before:auto}.table-wrap{overflow:visible;background:none}#lightbox{display:none}}
"""

_NUMERIC = re.compile(r"^[\[\-+]?\d[\d,.]*( ± [\d.]+)?(, [\d.]+\])?%?$")


def _cell_class(value: object) -> str:
    text = _fmt(value)
    for word in ("below", "above", "matched", "inconclusive"):
        if text.startswith(word):
            return f' class="{word}"'
    if _NUMERIC.match(text):
        return ' class="num"'
    return ' class="text"' if len(text) > 28 and " " in text else ""  # prose that may wrap; other cells never break


_HYPHENATED = re.compile(r"\S*\w-\w\S*")


def _whole_words(text: str) -> str:
    """Escaped text whose hyphenated words never wrap at their hyphen ("train-test", "cifar10-assignment")."""
    return _HYPHENATED.sub(lambda m: f"<span class='nw'>{m.group(0)}</span>", text)


def _cell(value: object) -> str:
    cls = _cell_class(value)
    text = html.escape(_fmt(value))
    return f"<td{cls}>" + (_whole_words(text) if "text" in cls else text) + "</td>"


_LIGHTBOX = (
    "<dialog id='lightbox' aria-label='figure at full size'><div class='lb-bar'>"
    "<button type='button' class='lb-size'>Fit to screen</button><button type='button' class='lb-close' "
    "aria-label='close'>Close &times;</button></div><div class='lb-view'></div><p class='lb-caption'></p></dialog>"
)

# Click (or tap, or Enter on) a figure: it opens at full size (one image pixel per CSS pixel, scrolled
# inside the overlay) in a modal <dialog>; "Fit to screen" or a click on the picture toggles the size;
# Esc, the close button or a click beside the picture closes it. No request: the picture is the
# figure's own data URI.
_SCRIPT = r"""
(function () {
  var box = document.getElementById('lightbox');
  if (!box || typeof box.showModal !== 'function') return;
  var img = document.createElement('img'), caption = box.querySelector('.lb-caption'), size = box.querySelector('.lb-size');
  img.alt = '';
  var opener = null;
  function fit(on) { box.classList.toggle('fit', on); size.textContent = on ? 'Actual size' : 'Fit to screen'; }
  function open(figure) {
    opener = figure;
    img.src = figure.src; img.alt = figure.alt;
    if (!img.parentNode) box.querySelector('.lb-view').appendChild(img);
    var cap = figure.closest('figure').querySelector('figcaption');
    caption.textContent = cap ? cap.textContent : figure.alt;
    fit(false);
    size.hidden = true;  // offered only when the picture is larger than the screen
    img.decode().then(function () {
      var view = box.querySelector('.lb-view');
      size.hidden = img.naturalWidth <= view.clientWidth && img.naturalHeight <= view.clientHeight;
    }, function () {});
    box.showModal();
    box.setAttribute('data-open', 'true');
    box.querySelector('.lb-close').focus();
  }
  box.addEventListener('close', function () {
    box.removeAttribute('data-open'); img.remove(); img.removeAttribute('src');
    if (opener) opener.focus({preventScroll: true});
  });
  box.addEventListener('click', function (e) {
    if (e.target === img) fit(!box.classList.contains('fit'));
    else if (e.target === size) fit(!box.classList.contains('fit'));
    else if (e.target === box || e.target.classList.contains('lb-view') || e.target.closest('.lb-close')) box.close();
  });
  [].forEach.call(document.querySelectorAll('figure img.zoomable'), function (figure) {
    figure.tabIndex = 0; figure.setAttribute('role', 'button'); figure.title = 'Open at full size';
    figure.addEventListener('click', function () { open(figure); });
    figure.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(figure); }
    });
  });
})();
"""


# A link to a heading inside a collapsed section (the contents, a shared address) opens that section;
# printing opens every section.
_FOLD_SCRIPT = r"""
(function () {
  function reveal() {
    var id = decodeURIComponent(location.hash.slice(1)), t = id && document.getElementById(id);
    for (var e = t; e; e = e.parentElement) if (e.tagName === 'DETAILS') e.open = true;
  }
  window.addEventListener('hashchange', reveal); reveal();
  window.addEventListener('beforeprint', function () {
    [].forEach.call(document.querySelectorAll('details.fold'), function (d) { d.open = true; });
  });
})();
"""


def _heading_ids(blocks: Sequence[Block]) -> dict[int, str]:
    """A unique id per h2/h3 block (by block index): its text in lower case, words joined by '-'."""
    ids: dict[int, str] = {}
    seen: set[str] = {"contents", "lightbox"}
    for i, b in enumerate(blocks):
        if b.kind in ("h2", "h3"):
            base = re.sub(r"[^a-z0-9]+", "-", b.text.lower()).strip("-") or "section"
            slug, n = base, 2
            while slug in seen:
                slug, n = f"{base}-{n}", n + 1
            seen.add(slug)
            ids[i] = slug
    return ids


def _toc_entries(blocks: Sequence[Block]) -> list[tuple[int, int, str]]:
    """(block index, level 2 or 3, text) of the headings the contents list."""
    return [(i, int(b.kind[1]), b.text) for i, b in enumerate(blocks) if b.kind in ("h2", "h3")]


def _toc_html(blocks: Sequence[Block], ids: dict[int, str]) -> str:
    esc = html.escape
    out, open_sub = ["<nav class='toc' id='contents' aria-label='contents'><p class='toc-title'>Contents</p><ol>"], False
    for i, level, text in _toc_entries(blocks):
        if level == 2:
            if open_sub:
                out.append("</ol>")
                open_sub = False
            out.append(("</li>" if len(out) > 1 else "") + f"<li><a href='#{ids[i]}'>{esc(text)}</a>")
        else:
            if not open_sub:
                out.append("<ol class='sub'>")
                open_sub = True
            out.append(f"<li><a href='#{ids[i]}'>{esc(text)}</a></li>")
    out.append(("</ol>" if open_sub else "") + "</li></ol></nav>")
    return "".join(out)


def render_html(doc: Doc, title: str, out: Path) -> str:
    esc = html.escape
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<meta name='generator' content='netsight'><title>{esc(title)}</title>"
        f"<style>{_CSS}</style></head><body>"
    ]
    tables = figures = 0
    ids = _heading_ids(doc.blocks)
    folded = False  # inside a collapsed h3 section's <details>
    for i, b in enumerate(doc.blocks):
        if b.kind in ("h1", "h2", "h3") and folded:
            parts.append("</div></details>")
            folded = False
        if b.kind == "h1":
            parts.append(f"<h1>{esc(b.text)}</h1>")
        elif b.kind in ("h2", "h3") and b.fold:
            parts.append(
                f"<details class='fold' id='{ids[i]}'><summary><{b.kind}>{esc(b.text)}</{b.kind}></summary><div class='folded'>"
            )
            folded = True
        elif b.kind in ("h2", "h3"):
            parts.append(f"<{b.kind} id='{ids[i]}'>{esc(b.text)}</{b.kind}>")
        elif b.kind == "toc":
            parts.append(_toc_html(doc.blocks, ids))
        elif b.kind == "links":
            shown = " · ".join(f"<a href='{esc(_relative(Path(str(p)), out))}'>{esc(str(label))}</a>" for p, label in b.rows)
            parts.append(f"<p class='links'>{shown}</p>")
        elif b.kind == "ul":
            items = "".join(f"<li>{esc(str(r[0]))}</li>" for r in b.rows)
            parts.append(f"<ul class='headline'>{items}</ul>" + (f"<p class='caption'>{esc(b.caption)}</p>" if b.caption else ""))
        elif b.kind == "p":
            parts.append(f"<p>{esc(b.text)}</p>")
        elif b.kind == "banner":
            parts.append(f"<p class='banner' role='note'>{esc(b.text)}</p>")
        elif b.kind == "missing":
            parts.append(f"<p class='missing' role='note'>{esc(_missing_text(b, out))}</p>")
        elif b.kind == "pre":
            parts.append(f"<pre>{esc(b.text)}</pre>")
        elif b.kind == "link":
            parts.append(f"<p class='link'><a href='{esc(_relative(_path(b), out))}'>{esc(b.text)}</a></p>")
        elif b.kind == "table":
            # The table scrolls sideways inside its own box (focusable, so keys scroll it too); its
            # caption sits below the box, as wide as the page, so it never scrolls out of sight.
            tables += 1
            numeric = [
                bool(b.rows) and all(_cell_class(r[c]) == ' class="num"' or _fmt(r[c]) == "" for r in b.rows if c < len(r))
                for c in range(len(b.header))
            ]  # numbers and their headers align right, text left
            head = "".join(
                ("<th class='num'>" if n else "<th>") + f"{_whole_words(esc(str(h)))}</th>"
                for h, n in zip(b.header, numeric, strict=True)
            )
            body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in b.rows)
            label = f"aria-labelledby='table-{tables}'" if b.caption else "aria-label='table'"
            wrap = f"<div class='table-wrap{'' if b.caption else ' bare'}' role='region' tabindex='0' {label}><table>"
            parts.append(
                f"{wrap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
                + (f"<p class='caption' id='table-{tables}'>{esc(b.caption)}</p>" if b.caption else "")
            )
        elif b.kind == "figure":
            figures += 1
            data = base64.b64encode(_path(b).read_bytes()).decode()
            parts.append(
                f"<figure><img class='zoomable' alt='{esc(b.caption)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{esc(b.caption)}</figcaption></figure>"
            )
    if folded:
        parts.append("</div></details>")
    if figures:
        parts.append(_LIGHTBOX + f"<script>{_SCRIPT}</script>")
    if any(b.kind == "toc" for b in doc.blocks):
        parts.append("<a class='totop' href='#contents'>contents &uarr;</a>")
    parts.append(f"<script>{_FOLD_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def render_markdown(doc: Doc, out: Path) -> str:
    lines = []
    for b in doc.blocks:
        if b.kind in ("h1", "h2", "h3"):
            lines.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "links":
            lines.append(" · ".join(f"[{label}]({_relative(Path(str(p)), out)})" for p, label in b.rows))
        elif b.kind == "toc":
            lines.append(
                "**Contents**\n\n" + "\n".join(("  " if lv == 3 else "") + f"- {t}" for _, lv, t in _toc_entries(doc.blocks))
            )
        elif b.kind == "ul":
            lines.append("\n".join(f"- {r[0]}" for r in b.rows) + (f"\n\n*{b.caption}*" if b.caption else ""))
        elif b.kind == "p":
            lines.append(b.text)
        elif b.kind == "banner":
            lines.append(f"> **{b.text}**")
        elif b.kind == "missing":
            lines.append(f"> **{_missing_text(b, out)}**")
        elif b.kind == "pre":
            lines.append("```\n" + b.text.rstrip() + "\n```")
        elif b.kind == "link":
            lines.append(f"[{b.text}]({_relative(_path(b), out)})")
        elif b.kind == "table":
            from .tables import markdown_table

            lines.append(
                markdown_table(b.header, [[_fmt(v) for v in r] for r in b.rows]).rstrip()
                + (f"\n\n*{b.caption}*" if b.caption else "")
            )
        elif b.kind == "figure":
            path = _path(b)
            lines.append(f"![{b.caption}]({path.relative_to(out) if path.is_relative_to(out) else path})\n\n*{b.caption}*")
        lines.append("")
    return "\n".join(lines)


def _missing_text(b: Block, out: Path) -> str:
    return f"{b.text} missing: {_relative(_path(b), out)}" + (f"; {b.caption}" if b.caption else "")


def _path(b: Block) -> Path:
    """A figure's, link's or missing file's path."""
    if b.path is None:
        raise ValueError(f"a {b.kind} block without a file")
    return b.path


def _relative(path: Path, out: Path) -> str:
    import os

    return Path(os.path.relpath(path, out)).as_posix()


def _fmt(v: object) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"  # thousands separators: 3,274,634 parameters
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


# ------------------------------------------------------------------ sections


def _cnn_section(doc: Doc, out: Path, configs: list[ConfigGroup], figdir: Path) -> None:
    from ..plotting import save_figure

    cnn = assignment_order([g for g in configs if g.hidden is None and g.data != "mnist"])
    doc.h(2, "1 Visualizing a CNN")
    if not cnn:
        doc.p("This suite has no CNN runs on CIFAR-10.")
        return
    doc.p(
        "LeNet5 and the improved CNN (batch norm + dropout) on the course's 28x28 grayscale CIFAR-10 subset "
        "(10,000 train / 1,000 test images), with the report's protocol unless the suite says otherwise."
    )
    rows = comparison_rows(cnn)
    gaps = {g.label: train_test_gap(g) for g in cnn}
    doc.table(
        [
            "model",
            "data",
            "seeds",
            "final test acc (%)",
            "95% CI (%)",
            "best test acc (%)",
            "train-test gap (points)",
            "parameters",
            "train s/run",
        ],
        [
            [
                r["model"],
                r["data"],
                r["seeds"],
                r["final_test_acc_%"],
                r["ci95_%"],
                r["best_test_acc_%"],
                gaps[g.label][0].pm(),
                r["parameters"],
                r["train_seconds"],
            ]
            for r, g in zip(rows, cnn, strict=True)
        ],
        "Final = last evaluation; mean ± sample std over seeds. The train-test gap, the overfitting measure the "
        "report uses, is " + _gap_words(gaps.values()) + ".",
    )
    path = save_figure(plot_train_test_bands(cnn, "CNNs on CIFAR-10"), figdir / "cnn_curves.png")
    doc.figure(
        path,
        "The key comparison: test accuracy (solid, whole test set) and train accuracy (dashed, eval mode on a fixed "
        "subset of training images) of each CNN, mean over seeds with a 1-std band. The distance between a model's "
        "two lines is its train-test gap.",
    )
    notes = _filter_notes(cnn)
    for g in cnn:
        first = g.runs[0]
        doc.h(3, f"{g.model} on {g.data}: curves and filters (seed {first.config.seed})", fold=True)
        doc.figure(
            first.dir.curves, f"{g.model}, seed {first.config.seed}: train/test accuracy and loss (the report's Figure 1/3)."
        )
        doc.techniques(first, g.model, "cnn", notes.get(g.label))


def _filter_notes(cnn: list[ConfigGroup]) -> dict[str, dict[Path, str]]:
    """Per CNN, a note on the filter grid it drew (figure path -> sentence): how far training moved
    that layer from its initial weights, and whether two models started from the same weights (same
    seed and layer shape): then their grids look alike after a short run, and the reader should be
    told why."""
    import torch

    from ..techniques.filters import conv_module, drift_from_init, initial_model
    from ..techniques.inspection import ran
    from ..errors import NetsightError

    starts, notes, grids = {}, {}, {}
    for g in cnn:
        run = g.runs[0]
        drawn = ran(run.path).get("filters")
        if drawn is None or not drawn.files[0].is_file():
            continue
        layer = drawn.options["layer"]
        try:
            drift = drift_from_init(run, layer)
            starts[g.label] = conv_module(initial_model(run), layer).weight.detach()
        except NetsightError:
            continue
        grids[g.label] = (drawn.files[0], layer)
        notes[g.label] = f"Training moved these weights by {drift:.1%} of their initial norm (||W - W0|| / ||W0||)."
    labels = list(starts)
    for a in labels:
        twins = [b for b in labels if b != a and starts[a].shape == starts[b].shape and torch.equal(starts[a], starts[b])]
        if twins:
            notes[a] += (
                f" It started from exactly the same {grids[a][1]} weights as {', '.join(twins)} (the same seed draws the "
                f"same layer of the same shape), so where training moved them little the two grids look alike."
            )
    return {label: {grids[label][0]: note} for label, note in notes.items()}


ASSIGNMENT_MODELS = ("lenet5", "cnn-bn")  # the assignment's order: LeNet5 first, then the improved CNN


def assignment_order(groups: list[ConfigGroup]) -> list[ConfigGroup]:
    """CNN groups in the assignment's order (LeNet5, then cnn-bn, then any other model as found)."""
    return sorted(
        groups, key=lambda g: ASSIGNMENT_MODELS.index(g.model) if g.model in ASSIGNMENT_MODELS else len(ASSIGNMENT_MODELS)
    )


def train_test_gap(g: ConfigGroup) -> tuple[Summary, str]:
    """The train-test gap at the last evaluation over seeds (fractions), and how train accuracy was measured:
    "eval" (eval mode on the fixed training subset, train_eval_acc) or, for runs written before netsight
    measured it, "interval" (the training minibatches' accuracy, dropout on, averaged since the previous
    evaluation: biased low for a model with dropout)."""
    rows = [r.metrics()[-1] for r in g.runs if r.metrics()]
    if rows and all(not math.isnan(row["train_eval_acc"]) for row in rows):
        return summarize([row["train_eval_acc"] - row["test_acc"] for row in rows]), "eval"
    return summarize([row["train_acc_mean"] - row["test_acc"] for row in rows]), "interval"


def _gap_words(gaps) -> str:
    """How the gaps of a table were measured, in words."""
    kinds = {kind for _, kind in gaps}
    eval_words = (
        f"train accuracy in eval mode (dropout off, batch norm's running statistics) on a fixed set of "
        f"{TRAIN_EVAL_IMAGES:,} training images (all of them if fewer), minus test accuracy, at the last evaluation"
    )
    interval_words = (
        "(for runs trained before netsight measured train accuracy in eval mode) the training minibatches' accuracy "
        "with dropout on, averaged since the previous evaluation, minus test accuracy: biased low for a model with "
        "dropout; train them again for the eval-mode gap"
    )
    return " and ".join([eval_words] * ("eval" in kinds) + [interval_words] * ("interval" in kinds)) or eval_words


def _zf_section(doc: Doc, configs: list[ConfigGroup]) -> None:
    from ..techniques.inspection import ran

    doc.h(2, "2 Zeiler & Fergus: visualizing and understanding convolutional networks")
    zf = [t.name for t in techniques_of("zf")]
    cnn = assignment_order([g for g in configs if g.hidden is None and any(name in ran(g.runs[0].path) for name in zf)])
    if not cnn:
        doc.p("No run of this suite asked for the Zeiler & Fergus analyses.")
        return
    doc.p(
        "The paper's tools applied to the trained networks (first seed), each at the layer and on the images its "
        "caption names: deconvnet projections (max-pool switches, rectification, transposed filters), the top-9 "
        "activations with their input patches, occlusion sensitivity, feature evolution across weight snapshots, and "
        "invariance to translation, rotation and scale."
    )
    for g in cnn:
        doc.h(3, f"{g.model} on {g.data} (seed {g.runs[0].config.seed})", fold=True)
        doc.techniques(g.runs[0], g.model, "zf")


def _rnn_section(doc: Doc, configs: list[ConfigGroup], figdir: Path, quick: bool) -> list[dict]:
    from ..plotting import save_figure

    doc.h(2, "3 Recurrent networks on MNIST, and the CNN")
    cells = ("rnn", "lstm", "gru")  # the assignment's order, after its CNNs (LeNet5, cnn-bn)
    mnist = assignment_order([g for g in configs if g.data == "mnist" and not g.hidden]) + sorted(
        (g for g in configs if g.data == "mnist" and g.hidden),
        key=lambda g: (cells.index(g.model) if g.model in cells else len(cells), g.hidden or 0),
    )
    recurrent = [g for g in mnist if g.hidden]
    if not mnist:
        doc.p("This suite has no MNIST runs.")
        return []
    doc.p(
        "Each image is read as a sequence of 28 rows of 28 pixels; the last hidden state goes through a linear "
        "classifier. The CNNs are trained on the same data with the same iteration budget."
    )
    rows = comparison_rows(mnist)
    cols = [
        "model",
        "hidden",
        "seeds",
        "final_test_acc_%",
        "ci95_%",
        "best_test_acc_%",
        "parameters",
        "train_seconds",
        "iters_to_95%",
        "iters_to_98%",
        "report_%",
    ] + ([] if quick else ["verdict"])
    doc.table(
        [COLUMN_TITLES[c] for c in cols],
        [[r[c] for c in cols] for r in rows],
        "Final test accuracy over the whole 10,000-image test set, mean ± std over seeds; 'report (%)' is the "
        "assignment report's single-run figure" + (" (quick mode: no verdicts)." if quick else "."),
    )
    if recurrent:
        figures = [
            (
                "rnn_by_hidden.png",
                lambda: plot_curves_panels(recurrent, "hidden", "model", "MNIST"),
                "Test accuracy per hidden size.",
            ),
            (
                "rnn_by_cell.png",
                lambda: plot_curves_panels(recurrent, "model", "hidden", "MNIST"),
                "Test accuracy per cell type.",
            ),
        ]
        if any((r.dir.tables / "rows_read.csv").is_file() for g in recurrent for r in g.runs):  # the "sequence" analysis
            figures += [  # (folded with the curves: the table above is the comparison; these are its detail)
                (
                    "rnn_rows_read.png",
                    lambda: plot_rows_read(recurrent, "MNIST"),
                    "Accuracy when only the first k rows have been read.",
                ),
                (
                    "rnn_gradient_flow.png",
                    lambda: plot_gradient_flow(recurrent, "MNIST"),
                    "Gradient reaching each input row (first seed).",
                ),
            ]
        doc.h(3, "The recurrent nets' curves, and how far back they look", fold=True)
        for name, make, caption in figures:
            doc.figure(save_figure(make(), figdir / name), caption)
        inside_recurrent(doc, recurrent, figdir, [g for g in mnist if not g.hidden])
        _explore_links(doc, recurrent)
    doc.figure(
        save_figure(plot_accuracy_vs_parameters(mnist, "MNIST"), figdir / "accuracy_vs_parameters.png"),
        "Final test accuracy against parameter count.",
    )
    return rows


def _explore_links(doc: Doc, recurrent: list[ConfigGroup]) -> None:
    """Each recurrent model's first-seed hidden-unit browser (the explore analysis), where it was made, as one
    compact list of links; what the pages hold is said once (gate saturation only for the cells with gates)."""
    from ..techniques.inspection import ran
    from ..techniques.registry import techniques

    found = [(g, ran(g.runs[0].path)["explore"]) for g in recurrent if "explore" in ran(g.runs[0].path)]
    if not found:
        return
    gated = sorted({g.model.upper() for g, _ in found if g.model in ("lstm", "gru")})
    doc.p(
        "Browse every hidden unit of a model (first seed): top-9 images with the row read at its peak, traces, mean "
        "trace per class, class selectivity"
        + (f"; for the {' and '.join(gated)} also each gate's saturation per unit (a plain RNN has no gates)" if gated else "")
        + "."
    )
    links = []
    for g, done in found:
        if done.files[0].is_file():
            links.append((done.files[0], g.label))
        else:
            doc._missing("file", done.files[0], rerun_command(techniques()["explore"], g.runs[0].path, done))
    if links:
        doc.blocks.append(Block("links", rows=[[str(p), label] for p, label in links]))


def _claims(configs: list[ConfigGroup], rnn_rows: list[dict]) -> list[list]:
    """Every number and behaviour the assignment report states, beside ours, with a verdict."""
    checks = []
    for r in rnn_rows:
        ref = REPORT_RNN_ACCURACY.get((r["model"], r["hidden"] or None))
        if ref is not None:
            checks.append(
                [
                    f"{r['model'].upper()}-{r['hidden']} test accuracy",
                    f"{ref:.2f}%",
                    f"{r['final_test_acc_%']}% (CI {r['ci95_%']})",
                    r["verdict"],
                ]
            )
    by = {(g.model, g.data, g.hidden): g for g in configs}
    lenet, bn = by.get(("lenet5", "cifar10-assignment", None)), by.get(("cnn-bn", "cifar10-assignment", None))

    def gap(g):
        return train_test_gap(g)[0]

    def above(s, threshold: float) -> str:  # a qualitative claim judged on the interval, like the numbers
        if s.n < 2:
            return "inconclusive (1 seed, no interval)"
        return (
            "matched"
            if s.ci_low > threshold
            else "below"
            if s.ci_high < threshold
            else "inconclusive (interval spans the threshold)"
        )

    if lenet:
        s = gap(lenet)
        checks.append(
            [
                "LeNet5 overfits: 'big gap between test accuracy and train accuracy' (we call a gap above 10 points big)",
                "qualitative",
                f"gap {s.pm()} points",
                above(s, 0.10),
            ]
        )
    if lenet and bn:
        a, b = lenet.final(), bn.final()
        if a.n > 1 and b.n > 1:
            result = (
                "matched" if b.ci_low > a.ci_high else "below" if b.ci_high < a.ci_low else "inconclusive (intervals overlap)"
            )
        else:
            result = "inconclusive (1 seed, no interval)"
        checks.append(
            ["the improved CNN's 'test accuracy gets better' than LeNet5's", "qualitative", f"{b.pm()}% vs {a.pm()}%", result]
        )
        s = gap(bn)
        checks.append(
            ["the improved CNN 'still' overfits (gap above 5 points)", "qualitative", f"gap {s.pm()} points", above(s, 0.05)]
        )
    found = {m: by.get((m, "mnist", 128)) for m in ("rnn", "lstm", "gru")}
    cells = {m: g for m, g in found.items() if g is not None}
    if len(cells) == len(found):
        f = {m: g.final() for m, g in cells.items()}
        lstm, rnn = f["lstm"], f["rnn"]
        result = (
            (
                "matched"
                if lstm.ci_low > rnn.ci_high
                else "below"
                if lstm.ci_high < rnn.ci_low
                else "inconclusive (intervals overlap)"
            )
            if lstm.n > 1 and rnn.n > 1
            else "inconclusive (1 seed, no interval)"
        )
        checks.append(["LSTM-128 'performs better than basic RNN'", "qualitative", f"{lstm.pm()}% vs {rnn.pm()}%", result])
        t = {m: g.iterations_to(0.98)[0].mean for m, g in cells.items()}
        best = max(f, key=lambda m: f[m].mean)
        others = [m for m in f if m != "gru"]
        clear = all(f["gru"].n > 1 and f[m].n > 1 and f["gru"].ci_low > f[m].ci_high for m in others)
        checks.append(
            [
                "GRU-128 'better and faster than both LSTM and RNN'",
                "qualitative",
                f"best final accuracy: {best.upper()}; iterations to 98%: "
                + ", ".join(f"{m.upper()} {t[m]:,.0f}" if t[m] == t[m] else f"{m.upper()} not reached" for m in t),
                "matched"
                if clear
                else "below"
                if best != "gru" and f[best].ci_low > f["gru"].ci_high
                else "inconclusive (intervals overlap)",
            ]
        )
    return checks


def _acc(s: Summary) -> str:
    """A test accuracy with its interval over seeds, in words."""
    if s.n == 0:
        return "no completed run"
    if s.n == 1:
        return f"{s.mean:.1%} (1 seed, no interval)"
    return f"{s.mean:.1%} (95% CI {s.ci_low:.1%} to {s.ci_high:.1%} over {s.n} seeds)"


def _apart(a: Summary, b: Summary) -> Optional[bool]:
    """True: the two 95% intervals do not overlap; False: they do; None: a side has no interval (one seed)."""
    if a.n < 2 or b.n < 2:
        return None
    return a.ci_low > b.ci_high or b.ci_low > a.ci_high


def headline_findings(configs: list[ConfigGroup]) -> list[str]:
    """The first screen: sentences generated from the numbers, each reading the interval over seeds it is
    about, beside chance (10 classes: 10%); where the intervals do not settle a comparison, it says so and
    what would settle it."""
    out = []
    cifar = assignment_order([g for g in configs if g.hidden is None and g.data != "mnist"])
    for g in cifar:
        out.append(f"{g.model} on {g.data}: final test accuracy {_acc(g.final())}; chance is 10%.")
    by = {g.model: g for g in cifar}
    if "lenet5" in by and "cnn-bn" in by:
        (a, kind_a), (b, kind_b) = train_test_gap(by["lenet5"]), train_test_gap(by["cnn-bn"])
        how = "eval-mode train accuracy minus test accuracy" if {kind_a, kind_b} == {"eval"} else "train minus test accuracy"
        said = f"Overfitting ({how}, in points): LeNet5's gap is {a.pm()}, cnn-bn's {b.pm()}"
        apart = _apart(a, b)
        if apart is None:
            out.append(
                said + ". With one seed there is no interval: which overfits more is unsettled; more seeds would settle it."
            )
        elif apart:
            more, less = ("LeNet5", "cnn-bn") if a.mean > b.mean else ("cnn-bn", "LeNet5")
            out.append(said + f". {more} overfits more than {less} (the 95% intervals over seeds do not overlap).")
        else:
            out.append(said + ". Their 95% intervals overlap, so which overfits more is unsettled; more seeds would settle it.")
    recurrent = [g for g in configs if g.hidden and g.data == "mnist"]
    finals = {g.label: g.final() for g in recurrent if g.final().n}
    if finals:
        best = max(finals, key=lambda k: finals[k].mean)
        near = [k for k in finals if k != best and _apart(finals[best], finals[k]) is not True]
        said = f"Best recurrent net on MNIST (of {len(finals)}): {best}, final test accuracy {_acc(finals[best])}"
        if not near:
            out.append(said + "; its interval lies above every other recurrent net's.")
        else:
            single = finals[best].n < 2 or any(finals[k].n < 2 for k in near)
            others = ", ".join(near[:3]) + (", ..." if len(near) > 3 else "")
            out.append(
                said
                + f"; the highest mean, but its interval overlaps those of {plural(len(near), 'other')} ({others})"
                + (" or there is a single seed" if single else "")
                + ", so which is best is unsettled; more seeds would settle it."
            )

    return out


def _settings_used(out: Path) -> tuple[list[str], list[list]]:
    """What actually ran, per group and model (after --quick and --seeds), from suite.json."""
    meta = read_json(out / "suite.json") if (out / "suite.json").is_file() else {}
    keys = ["data", "iterations", "batch_size", "lr", "optimizer", "eval_every", "hidden", "dropout", "init", "snapshots"]
    table: dict[tuple, dict] = {}
    for r in meta.get("runs", []):
        c = r.get("config", {})
        row = table.setdefault((r.get("group"), c.get("model")), {k: [] for k in keys + ["seed"]})
        for k in keys + ["seed"]:
            v = c.get(k)
            v = ",".join(str(x) for x in v) if isinstance(v, list) else ("" if v is None else v)
            if v not in row[k]:
                row[k].append(v)
    header = ["group", "model", "seeds"] + [k.replace("_", " ") for k in keys]
    rows = []
    for (group, model), values in table.items():
        cells = [group, model, ", ".join(map(str, sorted(values["seed"], key=lambda v: (str(type(v)), v))))]
        for k in keys:
            vs = sorted(values[k], key=lambda v: (0, v) if isinstance(v, (int, float)) else (1, str(v)))
            cells.append(", ".join(f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v) for v in vs))
        rows.append(cells)
    return header, rows


def _options_used(runs) -> list[list]:
    from ..techniques.inspection import ran

    rows = []
    for group, run in runs:
        for name, e in ran(run.path).items():
            shown = "; ".join(f"{k}={_option_value(v)}" for k, v in e.options.items() if v is not None and k != "others")
            rows.append([group, run.name, name, shown])
    return rows


def _option_value(v) -> str:
    """An option as its flag takes it: a list comma-joined (methods=gradient,gradcam), not Python's repr."""
    return ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)


def _wall_time(out: Path) -> str:
    """What the suite's last `netsight run` took on the clock, from suite.json (runs train side by
    side, so this is less than the sum of their times)."""
    meta = read_json(out / "suite.json") if (out / "suite.json").is_file() else {}
    t = meta.get("timing") or {}
    if "training_seconds" not in t:
        return ""
    workers = int(t.get("workers") or 1)
    return (
        f" The last netsight run of this suite took {t['training_seconds'] / 60:.1f} minutes of wall time to train "
        f"(what was left to train, {plural(workers, 'worker')} side by side) and {t['analyses_seconds'] / 60:.1f} "
        f"minutes for the analyses."
    )


def _provenance(doc: Doc, out: Path, runs, quick: bool) -> None:
    doc.h(2, "Provenance")
    first = runs[0][1].summary if runs else {}
    versions = first.get("versions", {})
    doc.p("Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + f". Device: {first.get('device', '?')}.")
    sources = sorted({r.summary.get("data_source", "?") for _, r in runs})
    doc.p("Data sources: " + "; ".join(sources) + ".")
    total = sum(float(r.summary.get("seconds") or 0) for _, r in runs)

    def pct(v):
        return "" if v is None else f"{float(v) * 100:.2f}"

    def secs(v):
        return "" if v is None else f"{float(v):,.1f}"

    doc.h(3, f"Every run ({len(runs)})", fold=True)
    doc.table(
        ["group", "run", "status", "seed", "final test acc (%)", "train seconds"],
        [
            [
                g,
                r.name,
                r.summary.get("status"),
                r.config.seed,
                pct(r.summary.get("final_test_acc")),
                secs(r.summary.get("seconds")),
            ]
            for g, r in runs
        ],
        f"{len(runs)} runs, {total / 60:.1f} minutes of training in all (the sum of each run's own time)." + _wall_time(out),
    )
    header, rows = _settings_used(out)
    options = _options_used(runs)
    if rows or options:
        doc.h(3, "Settings used", fold=True)
    if rows:
        doc.table(
            header,
            rows,
            "What each group actually ran"
            + (
                " — quick mode cut iterations, evaluations, snapshots and seeds, so these differ from the suite file below."
                if quick
                else ", resolved from the suite file and flags."
            ),
        )
    if options:
        doc.table(
            ["group", "run", "technique", "options it ran with"],
            options,
            "Each analysis's options as it ran (the suite file's, the rest the technique's defaults, resolved), from each "
            "run's inspections.json.",
        )
    suite = out / "suite.toml"
    if suite.is_file():
        doc.h(3, "The suite file, as written", fold=True)
        doc.pre(suite.read_text(encoding="utf-8"))


def build_report(out: str | Path) -> list[Path]:
    """Write OUT/report.html and OUT/report.md from the run directories under OUT."""
    from ..errors import NetsightError

    out = Path(out)
    runs = find_runs(out)
    if not runs:
        raise NetsightError(f"{out}: no run directories found (expected OUT/runs/<group>/<run>/config.json)")
    meta = read_json(out / "suite.json") if (out / "suite.json").is_file() else {}
    quick = bool(meta.get("quick"))
    title = str(meta.get("title") or "netsight study") + (" — QUICK SMOKE TEST" if quick else "")
    every = group_configs(runs)
    configs = [g for g in every if not g.control]  # the study's models; the controls serve the trust checks and ROAR
    controls = [g for g in every if g.control]
    figdir = out / "figures"
    doc = Doc()
    doc.h(1, title)
    seeds = sorted({r.config.seed for _, r in runs})
    iterations = sorted({r.config.iterations for _, r in runs})
    if quick:
        doc.banner(
            f"Quick mode: every run was cut to {', '.join(f'{i:,}' for i in iterations)} iterations and "
            f"{plural(len(seeds), 'seed')}, to check that the whole study runs. The numbers are not comparable to the "
            f"assignment report's, so this report gives no verdicts. Run without --quick for the real study."
        )
    doc.p(
        f"{len(runs) - sum(len(g.runs) for g in controls)} training runs over {len(configs)} configurations, seeds "
        f"{', '.join(map(str, seeds))}"
        + (
            f", and {plural(sum(len(g.runs) for g in controls), 'control run')} for the trust checks "
            f"({', '.join(sorted({g.control for g in controls}))}), which the sections below leave out. "
            if controls
            else ". "
        )
        + "Multi-seed numbers are mean ± sample standard deviation, with 95% confidence intervals (Student's t)."
    )
    _unrecorded(doc, out, meta, runs)
    findings = headline_findings(configs)
    if findings:
        doc.bullets(
            findings,
            "Headline findings, generated from the numbers below"
            + (" — quick mode: runs this short describe only themselves, not the study." if quick else "."),
        )
    doc.contents()
    _cnn_section(doc, out, configs, figdir)
    _zf_section(doc, configs)
    from .trust import trust_section

    trust_section(doc, assignment_order(configs), out, quick)  # LeNet5 first, as in section 1
    from ..suites.roar import report_items as roar_items

    roar = roar_items(out, quick)  # a suite with ROAR/KAR mask groups (`netsight run roar`): its retraining tests
    if roar:
        doc.h(3, "Retraining tests: ROAR and KAR (Hooker et al. 2019)")
        doc.items(roar, f"netsight run SUITE --out {out}")
    rnn_rows = _rnn_section(doc, configs, figdir, quick)
    doc.h(2, "Reproduction check")
    doc.p(
        "The numbers and claims checked here are those of the assignment report this study reproduces (ELEC 576 / "
        "COMP 576, Fall 2021, assignment 2); its text ships with netsight as netsight/suites/assignment-report.txt."
    )
    claims = [] if quick else _claims(configs, rnn_rows)
    if quick:
        doc.p("Not judged in quick mode: runs this short say nothing about the assignment report's numbers.")
    elif claims:
        doc.table(
            ["the assignment report says", "report", "ours", "verdict"],
            claims,
            "matched: the report's figure lies inside our 95% interval and that interval is at most ±2 points wide "
            "(or the behaviour holds beyond the interval); above/below: our interval lies entirely above/below the "
            "report's single-run figure; inconclusive: the interval is too wide, or there is a single seed.",
        )
    else:
        doc.p("No run of this suite corresponds to a number the assignment report states.")
    _provenance(doc, out, runs, quick)
    written = [
        write_text(out / "report.html", render_html(doc, title, out)),
        write_text(out / "report.md", render_markdown(doc, out)),
    ]
    if doc.missing:
        shown = ", ".join(_relative(p, out) for p in doc.missing[:6]) + (" ..." if len(doc.missing) > 6 else "")
        message = f"{out / 'report.html'}: {plural(len(doc.missing), 'expected file')} missing, noted in the report: {shown}"
        if os.environ.get("NETSIGHT_STRICT_REPORT"):
            raise NetsightError(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)
    return written


def _unrecorded(doc: Doc, out: Path, meta: dict, runs) -> None:
    """A note for the completed runs that were to have analyses but hold no record of what ran (a
    folder written before netsight recorded them): their techniques' items cannot be found."""
    from ..techniques.inspection import ran

    base = out / "runs" if (out / "runs").is_dir() else out
    asked = {(base / r["dir"]).resolve(): r.get("analyses") for r in meta.get("runs", [])}
    missing = [
        run.path.name
        for _, run in runs
        if asked.get(Path(run.path).resolve()) and run.summary.get("status") == "completed" and not ran(run.path)
    ]
    if missing:
        doc.banner(
            f"No record of the analyses that {plural(len(missing), 'run')} of this suite ran (inspections.json; e.g. "
            f"{missing[0]}), so their figures are left out. Run the same netsight run command again: finished analyses "
            "are kept, and recorded."
        )
