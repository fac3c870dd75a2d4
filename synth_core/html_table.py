"""The one HTML table helper for every page we render (gate report, validation result, gate review pages)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape


def html_table(header: Sequence[str], rows: Iterable[Sequence[str]], *, table_attrs: str = "",
               row_attrs: Sequence[str] | None = None) -> str:
    """A table; `header` is plain text (escaped here), cells are markup (callers escape their text).

    `table_attrs` and `row_attrs` (one string per row) are attribute markup, e.g. `class="history"`.
    """
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(f"<tr{' ' + row_attrs[i] if row_attrs and row_attrs[i] else ''}>"
                   + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for i, row in enumerate(rows))
    return f"<table{' ' + table_attrs if table_attrs else ''}><tr>{head}</tr>{body}</table>"
