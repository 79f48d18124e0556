"""Claims: what a paper says, what we measured, and a verdict computed by a rule, never typed by hand.

A chapter builds a list of :class:`Claim` and hands it to :func:`record_claims` once. That call computes the
verdicts, glues every number for the prose (myst-nb ``glue``), shows the claims table, and stores the claims in
the executed notebook under the ``application/vnd.repro.claims+json`` mime type, where the runner collects them.
"""
from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field
from typing import Any

REPRODUCED = "reproduced"
DIRECTION_HOLDS = "direction holds"
NOT_REPRODUCED = "not reproduced"
NOT_TESTED = "not tested at this scale"
VERDICTS = (REPRODUCED, DIRECTION_HOLDS, NOT_REPRODUCED, NOT_TESTED)

CLAIMS_MIME = "application/vnd.repro.claims+json"


def _judge_direction(value, std, threshold, band, margin_std, sign):
    """Shared rule for AtLeast (sign=+1) and AtMost (sign=-1)."""
    op = ">=" if sign > 0 else "<="
    excess = sign * (value - threshold)
    if excess < 0:
        return NOT_REPRODUCED, f"{value:.4g} is not {op} {threshold:g}"
    if margin_std and (excess <= margin_std * (std or 0.0) or excess == 0):
        return NOT_REPRODUCED, f"{value:.4g} is {op} {threshold:g} only within the seed spread (std {std or 0:.3g})"
    if band and not (band[0] <= value <= band[1]):
        return DIRECTION_HOLDS, f"{value:.4g} {op} {threshold:g}, but outside [{band[0]:g}, {band[1]:g}]"
    return REPRODUCED, f"{value:.4g} {op} {threshold:g}" + (f", inside [{band[0]:g}, {band[1]:g}]" if band else "")


@dataclass(frozen=True)
class AtLeast:
    """The measurement must reach ``threshold`` (the direction). If ``band`` (lo, hi) is given, the magnitude
    must also fall inside it to count as reproduced; outside it the direction still holds.
    ``margin_std`` asks the measurement to clear the threshold by more than that many seed standard deviations."""

    threshold: float
    band: tuple[float, float] | None = None
    margin_std: float = 0.0

    def describe(self) -> str:
        s = f">= {self.threshold:g}" + (f" by > {self.margin_std:g} std" if self.margin_std else "")
        return s + (f"; magnitude in [{self.band[0]:g}, {self.band[1]:g}]" if self.band else "")

    def judge(self, value: float, std: float | None) -> tuple[str, str]:
        return _judge_direction(value, std, self.threshold, self.band, self.margin_std, +1)


@dataclass(frozen=True)
class AtMost:
    """Mirror of :class:`AtLeast`: the measurement must not exceed ``threshold``."""

    threshold: float
    band: tuple[float, float] | None = None
    margin_std: float = 0.0

    def describe(self) -> str:
        s = f"<= {self.threshold:g}" + (f" by > {self.margin_std:g} std" if self.margin_std else "")
        return s + (f"; magnitude in [{self.band[0]:g}, {self.band[1]:g}]" if self.band else "")

    def judge(self, value: float, std: float | None) -> tuple[str, str]:
        return _judge_direction(value, std, self.threshold, self.band, self.margin_std, -1)


@dataclass(frozen=True)
class RatioBand:
    """measured / reference must lie in [lo, hi]. Outside the band, the direction still holds when the
    measurement lies on the same side of ``pivot`` as the reference (e.g. pivot 1 for speed-ups)."""

    reference: float
    lo: float
    hi: float
    pivot: float | None = None

    def describe(self) -> str:
        return f"ratio to {self.reference:g} in [{self.lo:g}, {self.hi:g}]"

    def judge(self, value: float, std: float | None) -> tuple[str, str]:
        ratio = value / self.reference
        if self.lo <= ratio <= self.hi:
            return REPRODUCED, f"ratio {ratio:.3g} in [{self.lo:g}, {self.hi:g}]"
        if self.pivot is not None and (value - self.pivot) * (self.reference - self.pivot) > 0:
            return DIRECTION_HOLDS, f"ratio {ratio:.3g} outside [{self.lo:g}, {self.hi:g}]; same side of {self.pivot:g}"
        return NOT_REPRODUCED, f"ratio {ratio:.3g} outside [{self.lo:g}, {self.hi:g}]"


@dataclass(frozen=True)
class Tolerance:
    """|measured - target| <= tol."""

    target: float
    tol: float

    def describe(self) -> str:
        return f"within {self.tol:g} of {self.target:g}"

    def judge(self, value: float, std: float | None) -> tuple[str, str]:
        gap = abs(value - self.target)
        if gap <= self.tol:
            return REPRODUCED, f"|{value:.4g} - {self.target:g}| = {gap:.3g} <= {self.tol:g}"
        return NOT_REPRODUCED, f"|{value:.4g} - {self.target:g}| = {gap:.3g} > {self.tol:g}"


Rule = AtLeast | AtMost | RatioBand | Tolerance


@dataclass
class Claim:
    """One headline claim of a paper, with our measurement and a computed verdict.

    ``paper_value`` is what the paper states (a number or a short phrase) and ``paper_source`` where it says so
    (table, figure or file). ``measured`` is None when this scale cannot test the claim; ``note`` says why.
    """

    id: str
    statement: str
    paper_value: Any
    paper_source: str
    measured: float | None
    unit: str
    rule: Rule
    std: float | None = None
    seeds: int = 1
    note: str = ""
    scale: str = ""
    verdict: str = field(default="", init=False)
    reason: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.judge()

    def judge(self) -> str:
        """(Re)compute the verdict from the measurement and the rule."""
        if self.measured is None or (isinstance(self.measured, float) and math.isnan(self.measured)):
            self.verdict, self.reason = NOT_TESTED, self.note or "no measurement at this scale"
        elif getattr(self.rule, "margin_std", 0) and self.seeds < 2:
            self.verdict = NOT_TESTED
            self.reason = "the rule weighs the effect against the seed spread: needs >= 2 seeds"
        else:
            self.verdict, self.reason = self.rule.judge(float(self.measured), self.std)
        return self.verdict

    def measured_text(self) -> str:
        if self.measured is None:
            return "n/a"
        text = f"{self.measured:.4g}"
        if self.std is not None and self.seeds > 1:
            text += f" ± {self.std:.2g}"
        return f"{text} {self.unit}".strip()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rule"] = self.rule.describe()
        d["measured_text"] = self.measured_text()
        return d


BADGE_COLOURS = {REPRODUCED: "#1a7f37", DIRECTION_HOLDS: "#9a6700", NOT_REPRODUCED: "#cf222e", NOT_TESTED: "#6e7781"}


def badge_html(verdict: str) -> str:
    colour = BADGE_COLOURS.get(verdict, "#6e7781")
    return (
        f'<span style="background:{colour};color:white;border-radius:4px;padding:1px 6px;'
        f'font-size:0.85em;white-space:nowrap">{html.escape(verdict)}</span>'
    )


def claims_table_html(rows: list[dict[str, Any]]) -> str:
    """A compact claims table: the paper's value over its source, the measurement, the verdict over its reason."""
    body = []
    for r in rows:
        seeds = f" <small>({r['seeds']} seeds)</small>" if r["seeds"] > 1 else ""
        cells = [
            f"<b>{html.escape(r['id'])}</b><br>{html.escape(r['statement'])}",
            f"{html.escape(str(r['paper_value']))}<br><small>{html.escape(r['paper_source'])}</small>",
            html.escape(r["measured_text"]) + seeds,
            f"{badge_html(r['verdict'])}<br><small>{html.escape(r['reason'])}; rule: {html.escape(r['rule'])}</small>",
        ]
        body.append("<tr>" + "".join(f'<td style="vertical-align:top">{c}</td>' for c in cells) + "</tr>")
    return f"{FOUR_COLUMN_TABLE_HEAD}<tbody>{''.join(body)}</tbody></table>"


# Fixed layout, so that long sources and reasons wrap inside the page instead of pushing the verdict off it.
FOUR_COLUMN_TABLE_HEAD = (
    '<table style="width:100%;table-layout:fixed;overflow-wrap:anywhere;font-size:0.85em">'
    '<colgroup><col style="width:31%"><col style="width:31%"><col style="width:14%"><col style="width:24%">'
    "</colgroup><thead><tr><th>claim</th><th>paper (source)</th><th>measured</th><th>verdict</th></tr></thead>"
)


def record_claims(chapter: str, claims: list[Claim], scale: str, glue: bool = True):
    """Judge, glue, show and store a chapter's claims. Call it once per chapter. Returns a DataFrame."""
    import pandas as pd
    from IPython.display import display

    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claim ids must be unique, got {ids}")
    for c in claims:
        c.scale = scale
        c.judge()
    rows = [c.to_dict() for c in claims]
    if glue:
        from myst_nb import glue as myst_glue

        for c in claims:
            myst_glue(f"{c.id}_measured", c.measured_text(), display=False)
            myst_glue(f"{c.id}_verdict", c.verdict, display=False)
    bundle = {
        "text/html": claims_table_html(rows),
        "text/plain": "\n".join(f"{r['id']}: {r['measured_text']} -> {r['verdict']}" for r in rows),
        CLAIMS_MIME: {"chapter": chapter, "scale": scale, "claims": rows},
    }
    display(bundle, raw=True)
    return pd.DataFrame(rows)[["id", "statement", "paper_value", "paper_source", "measured_text", "verdict", "reason"]]
