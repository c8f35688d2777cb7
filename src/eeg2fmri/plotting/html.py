"""Self-contained HTML pages: escaped text, tables and PNG images embedded as base64.

The page has inline CSS, a table of contents, no ``<script>`` and no external
URL, so it opens offline and can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eeg2fmri.utils.atomic import atomic_file
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["Image", "Preformatted", "write_html", "render_html"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ccc; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .15em; margin-top: 2em; }
nav.toc { background: #f6f6f6; border: 1px solid #ddd; padding: .5em 1.5em; display: inline-block; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .9em; color: #555; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: .8em; overflow-x: auto; white-space: pre-wrap; }
"""


@dataclass(frozen=True)
class Image:
    """A PNG image block: raw bytes or a path to a ``.png`` file, with an optional caption."""

    data: bytes | str | os.PathLike
    caption: str = ""


@dataclass(frozen=True)
class Preformatted:
    """A block of preformatted text (shown as is, escaped)."""

    text: str


Block = Any  # str (paragraph) | Sequence[Mapping] (table) | Image | Preformatted | bytes (PNG)


def _slug(text: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, i = base, 2
    while slug in used:
        slug, i = f"{base}-{i}", i + 1
    used.add(slug)
    return slug


def _cell(v: Any) -> tuple[str, bool]:
    """Text of one table cell and whether it is numeric."""
    if v is None:
        return "—", False
    if isinstance(v, bool):
        return str(v), False
    if isinstance(v, int):
        return str(v), True
    if isinstance(v, float):  # (a value within rounding of 0, e.g. the constant baseline's R² 4e-16, is shown as 0)
        return ("0" if abs(v) < 1e-9 else f"{v:.4g}") if v == v else "nan", True
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        return "[" + ", ".join(f"{x:.3g}" for x in v) + "]", True
    return str(v), False


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(str(k))
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"]
    for r in rows:
        cells = []
        for c in cols:
            text, num = _cell(r.get(c))
            cells.append(f'<td class="num">{html.escape(text)}</td>' if num else f"<td>{html.escape(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _png_bytes(data: bytes | str | os.PathLike) -> tuple[bytes, str]:
    if isinstance(data, (bytes, bytearray)):
        raw, where = bytes(data), "image bytes"
    else:
        p = Path(data)
        if not p.is_file():
            raise Eeg2fmriInputError(f"{p}: expected a PNG file, found none; check the path.")
        raw, where = p.read_bytes(), str(p)
    if not raw.startswith(_PNG_MAGIC):
        raise Eeg2fmriInputError(f"{where}: expected PNG data (starting with the PNG signature), got {raw[:8]!r}; pass a .png image.")
    return raw, where


def _image(img: Image) -> str:
    raw, _ = _png_bytes(img.data)
    b64 = base64.b64encode(raw).decode("ascii")
    cap = html.escape(img.caption)
    return f'<figure><img alt="{cap}" src="data:image/png;base64,{b64}"/>' + (f"<figcaption>{cap}</figcaption>" if cap else "") + "</figure>"


def _block(b: Block) -> str:
    if isinstance(b, Image):
        return _image(b)
    if isinstance(b, (bytes, bytearray)):
        return _image(Image(bytes(b)))
    if isinstance(b, Preformatted):
        return f"<pre>{html.escape(b.text)}</pre>"
    if isinstance(b, str):
        return f"<p>{html.escape(b)}</p>"
    if isinstance(b, os.PathLike):
        return _image(Image(b, caption=Path(b).name))
    if isinstance(b, Sequence) and all(isinstance(r, Mapping) for r in b):
        return _table(b) if b else "<p>(empty table)</p>"
    raise Eeg2fmriInputError(
        f"write_html: expected a block that is a paragraph (str), a table (list of dict rows), an Image, a Preformatted or PNG bytes, "
        f"got {type(b).__name__}; convert it to one of those."
    )


def render_html(title: str, sections: Sequence[tuple[str, Sequence[Block]]]) -> str:
    """The HTML text of a page (see :func:`write_html`)."""
    used: set[str] = set()
    slugs = [_slug(h, used) for h, _ in sections]
    toc = "\n".join(f'<li><a href="#{s}">{html.escape(h)}</a></li>' for s, (h, _) in zip(slugs, sections))
    body = []
    for s, (heading, blocks) in zip(slugs, sections):
        body.append(f'<section id="{s}"><h2>{html.escape(heading)}</h2>')
        body.extend(_block(b) for b in blocks)
        body.append("</section>")
    t = html.escape(title)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8"/>', GENERATOR_TAG, f"<title>{t}</title>", f"<style>{_CSS}</style>",
        "</head>", "<body>", f"<h1>{t}</h1>", '<nav class="toc"><strong>Contents</strong><ul>', toc, "</ul></nav>", *body,
        "</body>", "</html>", "",
    ])


#: Written into every page, so that ``overwrite=True`` replaces only a page of ours (never a user's file of that name).
GENERATOR_TAG = '<meta name="generator" content="eeg2fmri"/>'


def is_our_page(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a page written by :func:`write_html` (its head carries :data:`GENERATOR_TAG`)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(8192)
    except OSError:
        return False
    return GENERATOR_TAG in head or f"<style>{_CSS[:80]}" in head  # (pages written before the tag: our style sheet)


def write_html(path: str | os.PathLike, title: str, sections: Sequence[tuple[str, Sequence[Block]]], *, overwrite: bool = False) -> Path:
    """Write a self-contained HTML page atomically.

    Parameters
    ----------
    path : path-like
        The ``.html`` file to write.
    title : str
        Page title (``<title>`` and ``<h1>``).
    sections : sequence of (heading, blocks)
        One ``<h2>`` section per entry, listed in the table of contents.
        Blocks: ``str`` (a paragraph, escaped), a list of dict rows (a table;
        columns are the union of the keys in order of appearance), an
        :class:`Image` (PNG bytes or a path, embedded as a base64
        ``data:image/png`` URL, with a caption), PNG ``bytes``, a
        :class:`Preformatted` text.
    overwrite : bool
        Replace an existing page written by this function; any other file is refused.

    Returns
    -------
    path : Path
    """
    text = render_html(title, sections)
    path = Path(path)
    if overwrite and path.is_file() and not is_our_page(path):
        raise Eeg2fmriInputError(f"{path}: expected a page written by eeg2fmri to replace (overwrite), found another file; it is left as "
                                 "it is. Choose another output path, or move the file away first.")
    with atomic_file(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
