"""Figures the README quotes, each tied to its entry in ``bench/results.json`` by a marker.

A quoted figure is written as the number (and its unit) followed at once by an HTML comment
naming the figure, which renders as nothing on GitHub and on the docs site::

    a trivial cell takes 1.36x<!--fig:widgets.responsiveness_ratio--> its time

The quoted number must equal the figure's value rounded to the quoted digits (``1.36`` quotes
1.3585; ``15,190`` quotes 15189.5). A number that only looks like a measurement (a target, a
setting) is marked ``<!--fig:none-->``. A figure a benchmark measures but whose run is not in
the results file yet is marked ``<!--fig:pending:NAME-->`` (NAME's first part names the
benchmark, ``bench/bench_<part>.py``): :func:`pending` lists them (``python -m bench --check``
prints them with the benchmarks to run), and once NAME is recorded the marker is a problem
until ``python -m bench --quote`` rewrites the number and drops ``pending:``.
:func:`problems` lists markers naming no figure,
numbers that differ from their figure, and numbers that look measured (``1.5x``, ``3 ms``,
``45 µs``, ``99.3%``) but carry no marker; :func:`requote` rewrites every marked number from
the results file at its quoted precision (``python -m bench --quote``, after a re-run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench._report import Entry

#: A number (a minus sign when it stands alone before it, digits, thousands commas, decimals),
#: a short unit, then the marker.
MARKED = re.compile(
    r"(?P<number>(?:(?<![\w.\-])-)?\d[\d,]*(?:\.\d+)?)(?P<unit>[^\d<>\n]{0,12}?)"
    r"<!--fig:(?P<pending>pending:)?(?P<name>[\w.\-]*)-->"
)
#: Any marker, matched to a number or not.
MARKER = re.compile(r"<!--fig:(?:pending:)?(?P<name>[\w.\-]*)-->")
#: The prefix of a figure measured but not recorded yet.
PENDING = "pending:"
#: Numbers that read as measurements: ratios (``1.5x``), times in ms or µs, decimal percents.
LOOKS_MEASURED = re.compile(r"(?<![\w.,])\d[\d,]*(?:\.\d+)?(?:x|\s?ms|\s?µs)(?![\w])|\d+\.\d+%")
#: The marker of a number that is not a measured figure (a target, a setting, a limit).
NOT_A_FIGURE = "none"
_CODE = re.compile(r"^```.*?^```|`[^`\n]*`", re.MULTILINE | re.DOTALL)  # fenced or inline


@dataclass(frozen=True)
class Quote:
    """One marked number: the figure's name, the number as written, where it is."""

    name: str
    number: str
    line: int
    start: int  # offsets of the number in the text
    end: int
    pending: bool = False  # marked <!--fig:pending:NAME-->: not in the results file yet

    @property
    def value(self) -> float:
        return float(self.number.replace(",", ""))

    @property
    def decimals(self) -> int:
        return len(self.number.partition(".")[2])

    def matches(self, value: float) -> bool:
        """Whether ``value`` rounds to the quoted number at its precision (either way at a
        half: ``0.5`` quotes 0.45 and 0.55 alike)."""
        return abs(self.value - value) <= 0.5 * 10.0**-self.decimals * (1 + 1e-9)

    def render(self, value: float) -> str:
        """``value`` written as this quote writes its number (digits, commas)."""
        text = f"{value:,.{self.decimals}f}" if "," in self.number else f"{value:.{self.decimals}f}"
        return text


def _without_code(text: str) -> str:
    """``text`` with code (fenced blocks, inline spans: examples, not quotes) blanked, at the
    same length so that offsets stay valid."""
    return _CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)


def quotes(text: str) -> list[Quote]:
    """Every marked number in ``text`` (``<!--fig:none-->`` ones excluded)."""
    prose = _without_code(text)
    return [
        Quote(
            m["name"],
            m["number"],
            prose.count("\n", 0, m.start()) + 1,
            m.start("number"),
            m.end("number"),
            bool(m["pending"]),
        )
        for m in MARKED.finditer(prose)
        if m["name"] != NOT_A_FIGURE
    ]


def pending(text: str) -> list[Quote]:
    """The quotes of ``text`` marked pending (measured, not recorded yet)."""
    return [q for q in quotes(text) if q.pending]


def orphans(text: str) -> list[tuple[int, str]]:
    """(line, name) of every marker that follows no number (more than a short unit after it)."""
    prose = _without_code(text)
    matched = {m.start("name") for m in MARKED.finditer(prose)}
    return [
        (prose.count("\n", 0, m.start()) + 1, m["name"])
        for m in MARKER.finditer(prose)
        if m.start("name") not in matched
    ]


def unmarked(text: str) -> list[tuple[int, str]]:
    """(line, text) of every number that looks measured but carries no marker."""
    prose = MARKED.sub(lambda m: " " * len(m.group()), _without_code(text))
    return [
        (prose.count("\n", 0, m.start()) + 1, m.group()) for m in LOOKS_MEASURED.finditer(prose)
    ]


def problems(
    text: str, entries: list[Entry], where: str = "README.md", benches: set[str] | None = None
) -> list[str]:
    """Everything wrong with the figures ``text`` quotes, one line each (empty: all good).

    ``benches`` (the benchmarks' names) checks that each pending figure names one; pending
    figures themselves are not problems (:func:`pending` lists them)."""
    by_name = {e.name: e for e in entries}
    out = []
    for q in quotes(text):
        entry = by_name.get(q.name)
        if q.pending:
            if entry is not None:
                out.append(
                    f"{where}:{q.line}: {q.number} is marked pending but {q.name!r} is recorded "
                    f"now ({entry.figure.value:.6g}): `python -m bench --quote` rewrites the "
                    "number and drops 'pending:'"
                )
            elif benches is not None and q.name.partition(".")[0] not in benches:
                out.append(
                    f"{where}:{q.line}: {q.number} is marked pending as {q.name!r}, but no "
                    f"benchmark is named {q.name.partition('.')[0]!r} (available: "
                    f"{sorted(benches)})"
                )
        elif entry is None:
            out.append(f"{where}:{q.line}: {q.number} quotes {q.name!r}, which results.json lacks")
        elif not q.matches(entry.figure.value):
            out.append(
                f"{where}:{q.line}: {q.number} quotes {q.name!r}, which is "
                f"{entry.figure.value:.6g} ({q.render(entry.figure.value)} at the quoted "
                "precision; `python -m bench --quote` rewrites it)"
            )
    for line, name in orphans(text):
        out.append(
            f"{where}:{line}: the marker of {name!r} follows no number: write it right after the "
            "number and its unit (at most 12 characters, no digits)"
        )
    for line, number in unmarked(text):
        out.append(
            f"{where}:{line}: {number!r} reads as a measured figure but has no marker: write "
            "it as NUMBER<!--fig:NAME--> with NAME its entry in bench/results.json, or "
            f"NUMBER<!--fig:{NOT_A_FIGURE}--> if it is not a measurement"
        )
    return out


def requote(text: str, entries: list[Entry]) -> tuple[str, list[str]]:
    """``text`` with every marked number rewritten from ``entries`` at its quoted precision, and
    what changed (one line each). Quotes of figures the results lack are left as they are;
    a pending quote of a recorded figure loses its ``pending:``."""
    by_name = {e.name: e.figure.value for e in entries}
    changes, pieces, at = [], [], 0
    for q in quotes(text):
        if q.name not in by_name:
            continue
        new = q.render(by_name[q.name])
        if new != q.number or q.pending:
            changes.append(f"line {q.line}: {q.name}: {q.number} -> {new}")
        pieces += [text[at : q.start], new]
        at = q.end
        if q.pending:
            marker = text.index(f"<!--fig:{PENDING}{q.name}-->", at)
            pieces.append(text[at:marker] + f"<!--fig:{q.name}-->")
            at = marker + len(f"<!--fig:{PENDING}{q.name}-->")
    return "".join([*pieces, text[at:]]), changes
