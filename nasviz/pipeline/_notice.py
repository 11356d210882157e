"""Notices: what a notebook run must tell its reader, in the notebook *and* in the terminal.

A step that quietly does something other than asked (``02_search`` finds no trained supernet
and trains a rough one-epoch stand-in, say) calls :func:`notice`. In the notebook it shows as a
highlighted note; ``nasviz run`` / ``nasviz pipeline`` find it in the cell's outputs (by its own
mimetype) and print it in the terminal as the cell completes.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["NOTICE_MIME", "notice", "notices"]

NOTICE_MIME = "application/vnd.nasviz.notice+json"


def notice(message: str) -> None:
    """Shows ``message`` as a note in the notebook (and, for ``nasviz run``, in the terminal);
    outside IPython it goes to stderr."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None  # type: ignore[assignment]
    if get_ipython is None or get_ipython() is None:
        print(f"note: {message}", file=sys.stderr)
        return
    shown = html.escape(message)
    display(
        {
            NOTICE_MIME: {"message": message},
            "text/html": (
                "<div style='border-left:4px solid #e69500;background:#fff6e5;padding:6px 10px'>"
                f"<b>Note</b>: {shown}</div>"
            ),
            "text/plain": f"Note: {message}",
        },
        raw=True,
    )


def notices(cell: Mapping[str, Any]) -> list[str]:
    """The notices a code cell's outputs hold."""
    found = []
    for output in cell.get("outputs", []) or []:
        data = output.get("data", {}) if isinstance(output, Mapping) else {}
        if NOTICE_MIME in data:
            found.append(str(data[NOTICE_MIME].get("message", "")))
    return found
