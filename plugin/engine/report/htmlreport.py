"""Small helpers for self-contained HTML reports: one file, inline CSS, images embedded as base64,
so a report opens in any browser (and in Processing's Results Viewer) without anything next to it.

Text is escaped everywhere except in values wrapped in ``Html`` (markup built by these helpers)."""

from __future__ import annotations

import base64
import html as _html
import math
import os
from collections.abc import Sequence

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #2c7fb8; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 1.8em; color: #2c7fb8; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .92em; }
th, td { border: 1px solid #d0d7de; padding: .3em .6em; }
th { background: #f3f6f9; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
img { max-width: 100%; height: auto; }
.swatch { display: inline-block; width: .9em; height: .9em; border: 1px solid #555; margin-right: .4em;
          vertical-align: -.1em; }
.footer { margin-top: 2em; color: #777; font-size: .85em; }
"""


class Html(str):
    """Markup that ``table`` and ``page`` insert as is (everything else is escaped)."""


def escape(value: object) -> str:
    return value if isinstance(value, Html) else _html.escape(str(value))


def format_value(value: object) -> str:
    """Cell text: integers with thousands separators, floats with 4 decimals, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.4g}"
        return f"{value:.4f}"
    if hasattr(value, "item"):  # numpy scalars
        return format_value(value.item())
    return str(value)


def _is_number(value: object) -> bool:
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """An HTML table of ``rows`` (dicts); columns default to every key, in first-seen order.
    Numbers are right-aligned and formatted (``format_value``)."""
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{escape(column)}</th>" for column in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            text = value if isinstance(value, Html) else escape(format_value(value))
            cells.append(f'<td class="num">{text}</td>' if _is_number(value) else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return Html(f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>\n")


def swatch(color: str, label: str) -> Html:
    """A small colour square followed by ``label``."""
    return Html(f'<span class="swatch" style="background:{escape(color)}"></span>{escape(label)}')


def image_tag(png_path: str, alt: str, embed: bool = True) -> Html:
    """An <img> of a PNG: embedded as base64 (the report stands alone), or linked by file name."""
    if embed:
        with open(png_path, "rb") as stream:
            data = base64.b64encode(stream.read()).decode("ascii")
        source = f"data:image/png;base64,{data}"
    else:
        source = os.path.basename(png_path)
    return Html(f'<img src="{escape(source)}" alt="{escape(alt)}">')


def page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A complete HTML page: the title, then each (heading, body) section. Bodies are HTML (use
    ``escape`` for plain text); an empty heading adds the body without a heading."""
    parts = [f"<h1>{escape(title)}</h1>"]
    for heading, body in sections:
        if heading:
            parts.append(f"<h2>{escape(heading)}</h2>")
        parts.append(str(body))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(parts)
        + '\n<p class="footer">Made by PatchFlow.</p>\n</body>\n</html>\n'
    )


def paragraph(text: str) -> Html:
    return Html(f"<p>{escape(text)}</p>")


def write(path: str, html: str) -> None:
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(html)
