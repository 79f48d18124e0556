"""Claims: what a paper says, what we measured, and a verdict computed by a rule, never typed by hand.

A chapter builds a list of :class:`Claim` and hands it to :func:`record_claims` once. That call checks every claim
against the scoreboard's policy (see :func:`policy_errors`), computes the verdicts, resolves premises, glues every
number for the prose (myst-nb ``glue``), shows the claims tables, and stores the claims in the executed notebook
under the ``application/vnd.repro.claims+json`` mime type, where the runner collects them.

Two kinds of row:

- a **reproduction** measures what the paper claims; only these count toward "reproduced k/n";
- a **check** verifies our own implementation (a formula identity, a count by construction, determinism,
  exactness). A check passes or fails; it never counts as a reproduction.

What the paper states decides the rule a reproduction may use (``states``):

- ``"direction"``: the paper states only a direction ("faster", "reduces"): a directional rule, no band;
- ``"magnitude"``: the paper states a number ("28.4x", "+0.77 points"): a band or tolerance that excludes the
  no-effect value, with its edge nearer no effect at least halfway from no effect to the paper's value;
- ``"parity"``: the paper states no loss or comparable results: a non-inferiority or equivalence rule.

Statistical rules (:class:`Superior`, :class:`NonInferior`, :class:`Equivalent`) take the per-seed samples (paired
by seed) and judge the one-sided 90 % t-interval, never a mean against a threshold. With fewer than
:data:`MIN_SEEDS` samples, such a claim is "not tested at this scale".
"""
from __future__ import annotations

import html
import math
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

REPRODUCED = "reproduced"
DIRECTION_HOLDS = "direction holds"
NOT_REPRODUCED = "not reproduced"
NOT_TESTED = "not tested at this scale"
VERDICTS = (REPRODUCED, DIRECTION_HOLDS, NOT_REPRODUCED, NOT_TESTED)
CHECK_PASSED = "check passed"
CHECK_FAILED = "check failed"
CHECK_VERDICTS = (CHECK_PASSED, CHECK_FAILED, NOT_TESTED)

REPRODUCTION = "reproduction"
CHECK = "check"
KINDS = (REPRODUCTION, CHECK)
STATES = ("magnitude", "direction", "parity")
# Where a paper number comes from, as tagged in shared/papers/*.md: read in the paper, read in the official code or
# its result files, or taken from a third-party summary (quoted as secondary, not checked against the paper).
CONFIDENCES = ("paper", "code", "secondary")
MIN_SEEDS = 3
LEVEL = 0.90

CLAIMS_MIME = "application/vnd.repro.claims+json"


class ClaimPolicyError(ValueError):
    """A claim whose rule contradicts what the paper states, or that lacks what the scoreboard needs."""


def t_bounds(samples: list[float], level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, lower, upper): the one-sided ``level`` t-interval bounds of the mean of ``samples``.

    ``lower`` is the bound of the interval (lower, inf), ``upper`` that of (-inf, upper); with zero spread both equal
    the mean."""
    from scipy import stats

    n = len(samples)
    mean = statistics.fmean(samples)
    sd = statistics.stdev(samples) if n > 1 else 0.0
    half = float(stats.t.ppf(level, n - 1)) * sd / math.sqrt(n) if n > 1 and sd > 0 else 0.0
    return mean, mean - half, mean + half


def _in_band(value: float, band: tuple[float, float]) -> bool:
    return band[0] <= value <= band[1]


def _band_text(band) -> str:
    return f"[{band[0]:g}, {band[1]:g}]"


def _halfway_errors(no_effect: float, reference: float, band: tuple[float, float]) -> list[str]:
    """The policy for a magnitude band: it excludes no effect, and its edge nearer no effect lies at least halfway
    from no effect to the paper's value."""
    if reference == no_effect:
        return [f"the paper's value {reference:g} equals the no-effect value: that is a parity claim"]
    if band[0] > band[1]:
        return [f"band {_band_text(band)} is empty"]
    if not (band[0] <= reference <= band[1]):
        return [f"band {_band_text(band)} does not contain the paper's value {reference:g}"]
    half = no_effect + (reference - no_effect) / 2
    slack = 1e-9 * max(abs(half), 1.0)  # a band written as (1 + r) / 2 must not fail on rounding
    if reference > no_effect and band[0] < half - slack:
        return [f"band {_band_text(band)}: its lower edge must be >= {half:.4g}, halfway from no effect "
                f"({no_effect:g}) to the paper's {reference:g}"]
    if reference < no_effect and band[1] > half + slack:
        return [f"band {_band_text(band)}: its upper edge must be <= {half:.4g}, halfway from no effect "
                f"({no_effect:g}) to the paper's {reference:g}"]
    return []


@dataclass(frozen=True)
class AtLeast:
    """A single measurement must reach ``threshold`` (the direction; for an effect, the no-effect value). With a
    ``band`` (lo, hi) around the paper's ``reference``, the magnitude must also fall inside it to count as
    reproduced; outside it the direction still holds."""

    threshold: float
    band: tuple[float, float] | None = None
    reference: float | None = None
    statistical = False

    def describe(self) -> str:
        return f">= {self.threshold:g}" + (f"; magnitude in {_band_text(self.band)}" if self.band else "")

    def judge(self, value: float, samples) -> tuple[str, str]:
        return _judge_direction(value, self.threshold, self.band, +1)

    def policy(self, states: str) -> list[str]:
        if states == "direction":
            return ["a direction-only claim takes no band"] if self.band else []
        if states == "magnitude":
            if self.band is None or self.reference is None:
                return ["a magnitude claim needs a band and the paper's reference value"]
            return _halfway_errors(self.threshold, self.reference, self.band)
        return ["a parity claim needs NonInferior, Equivalent or Tolerance"]


@dataclass(frozen=True)
class AtMost:
    """Mirror of :class:`AtLeast`: the measurement must not exceed ``threshold``."""

    threshold: float
    band: tuple[float, float] | None = None
    reference: float | None = None
    statistical = False

    def describe(self) -> str:
        return f"<= {self.threshold:g}" + (f"; magnitude in {_band_text(self.band)}" if self.band else "")

    def judge(self, value: float, samples) -> tuple[str, str]:
        return _judge_direction(value, self.threshold, self.band, -1)

    policy = AtLeast.policy


def _judge_direction(value, threshold, band, sign):
    op = ">" if sign > 0 else "<"
    if not sign * (value - threshold) > 0:
        return NOT_REPRODUCED, f"{value:.4g} is not {op} {threshold:g}"
    if band and not _in_band(value, band):
        return DIRECTION_HOLDS, f"{value:.4g} {op} {threshold:g}, but outside {_band_text(band)}"
    return REPRODUCED, f"{value:.4g} {op} {threshold:g}" + (f", inside {_band_text(band)}" if band else "")


@dataclass(frozen=True)
class RatioBand:
    """measured / reference must lie in [lo, hi]. Outside the band, the direction still holds when the
    measurement lies on the same side of ``pivot`` (the no-effect value, e.g. 1 for speed-ups) as the reference."""

    reference: float
    lo: float
    hi: float
    pivot: float | None = None
    statistical = False

    def describe(self) -> str:
        return f"ratio to {self.reference:g} in [{self.lo:g}, {self.hi:g}]"

    def judge(self, value: float, samples) -> tuple[str, str]:
        ratio = value / self.reference
        if self.pivot is not None and not (value - self.pivot) * (self.reference - self.pivot) > 0:
            return NOT_REPRODUCED, f"{value:.4g} is on the no-effect side of {self.pivot:g}"
        if self.lo <= ratio <= self.hi:
            return REPRODUCED, f"ratio {ratio:.3g} in [{self.lo:g}, {self.hi:g}]"
        if self.pivot is not None:
            return DIRECTION_HOLDS, f"ratio {ratio:.3g} outside [{self.lo:g}, {self.hi:g}]; same side of {self.pivot:g}"
        return NOT_REPRODUCED, f"ratio {ratio:.3g} outside [{self.lo:g}, {self.hi:g}]"

    def policy(self, states: str) -> list[str]:
        if states != "magnitude":
            return [f"RatioBand tests a magnitude, but the claim states a {states}"]
        if self.pivot is None:
            return ["RatioBand on an effect needs its pivot (the no-effect value)"]
        band = (self.lo * self.reference, self.hi * self.reference)
        return _halfway_errors(self.pivot, self.reference, (min(band), max(band)))


@dataclass(frozen=True)
class Tolerance:
    """|measured - target| <= tol. For an effect, give ``no_effect``: the tolerance must then stay within half the
    distance from the target to no effect. A level (a median, a share) has no no-effect value."""

    target: float
    tol: float
    no_effect: float | None = None
    statistical = False

    def describe(self) -> str:
        return f"within {self.tol:g} of {self.target:g}"

    def judge(self, value: float, samples) -> tuple[str, str]:
        gap = abs(value - self.target)
        if gap <= self.tol:
            return REPRODUCED, f"|{value:.4g} - {self.target:g}| = {gap:.3g} <= {self.tol:g}"
        return NOT_REPRODUCED, f"|{value:.4g} - {self.target:g}| = {gap:.3g} > {self.tol:g}"

    def policy(self, states: str) -> list[str]:
        if states == "direction":
            return ["a direction-only claim needs AtLeast, AtMost or Superior"]
        if states == "magnitude" and self.no_effect is not None:
            return _halfway_errors(self.no_effect, self.target, (self.target - self.tol, self.target + self.tol))
        return []


@dataclass(frozen=True)
class Superior:
    """Per-seed paired differences (oriented so that positive is the paper's direction) must be above
    ``no_effect``: reproduced when the lower bound of the one-sided ``level`` t-interval exceeds it. With a
    ``band`` around the paper's ``reference``, the mean must also fall inside it (else: direction holds)."""

    band: tuple[float, float] | None = None
    reference: float | None = None
    no_effect: float = 0.0
    level: float = LEVEL
    statistical = True

    def describe(self) -> str:
        s = f"{self.level:.0%} lower bound > {self.no_effect:g}"
        return s + (f"; mean in {_band_text(self.band)}" if self.band else "")

    def judge(self, value: float, samples) -> tuple[str, str]:
        mean, lower, _ = t_bounds(samples, self.level)
        if not lower > self.no_effect:
            return NOT_REPRODUCED, f"{self.level:.0%} lower bound {lower:.3g} is not > {self.no_effect:g}"
        if self.band and not _in_band(mean, self.band):
            return DIRECTION_HOLDS, (f"lower bound {lower:.3g} > {self.no_effect:g}, "
                                     f"mean outside {_band_text(self.band)}")
        return REPRODUCED, f"{self.level:.0%} lower bound {lower:.3g} > {self.no_effect:g}" + (
            f", mean inside {_band_text(self.band)}" if self.band else "")

    def policy(self, states: str) -> list[str]:
        if states == "direction":
            return ["a direction-only claim takes no band"] if self.band else []
        if states == "magnitude":
            if self.band is None or self.reference is None:
                return ["a magnitude claim needs a band and the paper's reference value"]
            return _halfway_errors(self.no_effect, self.reference, self.band)
        return ["a parity claim needs NonInferior or Equivalent"]


@dataclass(frozen=True)
class NonInferior:
    """Per-seed paired differences (positive is better) must not be worse than ``-delta``: reproduced when the lower
    bound of the one-sided ``level`` t-interval is >= -delta."""

    delta: float
    level: float = LEVEL
    statistical = True

    def describe(self) -> str:
        return f"{self.level:.0%} lower bound >= -{self.delta:g}"

    def judge(self, value: float, samples) -> tuple[str, str]:
        _, lower, _ = t_bounds(samples, self.level)
        if lower >= -self.delta:
            return REPRODUCED, f"{self.level:.0%} lower bound {lower:.3g} >= -{self.delta:g}"
        return NOT_REPRODUCED, f"{self.level:.0%} lower bound {lower:.3g} < -{self.delta:g}"

    def policy(self, states: str) -> list[str]:
        return [] if states == "parity" else [f"NonInferior tests parity, but the claim states a {states}"]


@dataclass(frozen=True)
class Equivalent:
    """Two one-sided tests: per-seed paired differences lie within +-``delta``: reproduced when the one-sided
    ``level`` lower bound is >= -delta and the upper bound <= +delta."""

    delta: float
    level: float = LEVEL
    statistical = True

    def describe(self) -> str:
        return f"{self.level:.0%} bounds within +-{self.delta:g}"

    def judge(self, value: float, samples) -> tuple[str, str]:
        _, lower, upper = t_bounds(samples, self.level)
        text = f"{self.level:.0%} bounds [{lower:.3g}, {upper:.3g}]"
        if lower >= -self.delta and upper <= self.delta:
            return REPRODUCED, f"{text} within +-{self.delta:g}"
        return NOT_REPRODUCED, f"{text} not within +-{self.delta:g}"

    policy = NonInferior.policy


Rule = AtLeast | AtMost | RatioBand | Tolerance | Superior | NonInferior | Equivalent


@dataclass
class Claim:
    """One headline claim of a paper (or one check of ours), with our measurement and a computed verdict.

    ``paper_value`` is what the paper states (a number or a short phrase), ``paper_source`` where it says so (table,
    figure or file) and ``confidence`` how we know it (:data:`CONFIDENCES`). ``measured`` is None when this scale
    cannot test the claim; ``note`` says why. Statistical rules take ``samples``, one value per seed (paired by
    seed); ``measured``, ``std`` and ``seeds`` then follow from them. ``premise`` names another claim of the chapter
    that must hold for this one to be tested.
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
    kind: str = REPRODUCTION
    states: str = "direction"
    confidence: str = ""
    samples: list[float] | None = None
    premise: str | None = None
    verdict: str = field(default="", init=False)
    reason: str = field(default="", init=False)

    def __post_init__(self) -> None:
        if self.samples is not None:
            self.samples = [float(s) for s in self.samples if s is not None and not math.isnan(float(s))]
            self.seeds = len(self.samples)
            if self.measured is None and self.samples:
                self.measured = statistics.fmean(self.samples)
            self.std = statistics.stdev(self.samples) if len(self.samples) > 1 else None
        self.judge()

    def judge(self) -> str:
        """(Re)compute the verdict from the measurement and the rule (premises are resolved by record_claims)."""
        if self.measured is None or (isinstance(self.measured, float) and math.isnan(self.measured)):
            self.verdict, self.reason = NOT_TESTED, self.note or "no measurement at this scale"
        elif self.rule.statistical and (self.samples is None or len(self.samples) < MIN_SEEDS):
            self.verdict = NOT_TESTED
            self.reason = (f"a statistical claim needs per-seed samples from >= {MIN_SEEDS} seeds; "
                           f"got {0 if self.samples is None else len(self.samples)}")
        else:
            self.verdict, self.reason = self.rule.judge(float(self.measured), self.samples)
            if self.kind == CHECK:
                self.verdict = CHECK_PASSED if self.verdict == REPRODUCED else CHECK_FAILED
        return self.verdict

    @property
    def holds(self) -> bool:
        """Whether this claim can serve as a premise: reproduced, its direction holds, or the check passed."""
        return self.verdict in (REPRODUCED, DIRECTION_HOLDS, CHECK_PASSED)

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


def policy_errors(claim: Claim) -> list[str]:
    """Everything that makes ``claim`` break the scoreboard's policy (empty when it complies)."""
    errors = []
    if claim.kind not in KINDS:
        return [f"kind must be one of {', '.join(KINDS)}, got {claim.kind!r}"]
    if claim.rule.statistical and claim.samples is None:
        errors.append(f"{type(claim.rule).__name__} judges per-seed samples: pass samples=[...]")
    if claim.kind == CHECK:
        return errors
    if claim.states not in STATES:
        errors.append(f"states must be one of {', '.join(STATES)}, got {claim.states!r}")
        return errors
    if claim.confidence not in CONFIDENCES:
        errors.append(f"a reproduction's paper value needs a confidence in {', '.join(CONFIDENCES)}, "
                      f"got {claim.confidence!r}")
    if not str(claim.paper_source).strip():
        errors.append("a reproduction needs the paper's source")
    errors += claim.rule.policy(claim.states)
    if claim.seeds > 1 and not claim.rule.statistical and claim.states != "magnitude":
        errors.append(f"{claim.seeds} seeds judged on their mean: a {claim.states} claim over seeds needs a "
                      "statistical rule on the per-seed samples (Superior, NonInferior or Equivalent)")
    return errors


def resolve_premises(claims: list[Claim]) -> None:
    """A claim whose premise does not hold reads "not tested", whatever its own numbers say."""
    by_id = {c.id: c for c in claims}
    for c in claims:
        if c.premise is None:
            continue
        if c.premise not in by_id:
            raise ClaimPolicyError(f"claim {c.id!r} names an unknown premise {c.premise!r}")
        premise = by_id[c.premise]
        if premise.premise is not None:
            raise ClaimPolicyError(f"claim {c.id!r}: premise {premise.id!r} has a premise of its own")
        if premise.verdict == NOT_TESTED:
            c.verdict = NOT_TESTED
            c.reason = (f"not tested: premise {premise.id} was not tested ({premise.reason}); "
                        f"measured {c.measured_text()}")
        elif not premise.holds:
            c.verdict = NOT_TESTED
            c.reason = f"not tested: premise failed ({premise.id}: {premise.verdict}); measured {c.measured_text()}"


def verdict_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Counts per verdict of the reproductions, plus checks passed / failed, from claim dicts (status files)."""
    counts = Counter()
    for r in rows:
        if r.get("kind", REPRODUCTION) == CHECK:
            counts[r["verdict"] if r["verdict"] in (CHECK_PASSED, CHECK_FAILED) else "check not run"] += 1
        else:
            counts[r["verdict"]] += 1
    return {k: counts.get(k, 0) for k in (*VERDICTS, CHECK_PASSED, CHECK_FAILED, "check not run")}


def counts_text(counts: dict[str, int]) -> str:
    """One line: "reproduced 5/12 (direction holds 2, ...); checks 3/3 passed"."""
    total = sum(counts[v] for v in VERDICTS)
    others = ", ".join(f"{v} {counts[v]}" for v in VERDICTS[1:] if counts[v])
    checks = counts[CHECK_PASSED] + counts[CHECK_FAILED] + counts["check not run"]
    text = f"reproduced {counts[REPRODUCED]}/{total}" + (f" ({others})" if others else "")
    return text + (f"; checks {counts[CHECK_PASSED]}/{checks} passed" if checks else "")


BADGE_COLOURS = {REPRODUCED: "#1a7f37", DIRECTION_HOLDS: "#9a6700", NOT_REPRODUCED: "#cf222e", NOT_TESTED: "#6e7781",
                 CHECK_PASSED: "#0969da", CHECK_FAILED: "#cf222e"}


def badge_html(verdict: str) -> str:
    colour = BADGE_COLOURS.get(verdict, "#6e7781")
    return (
        f'<span style="background:{colour};color:white;border-radius:4px;padding:1px 6px;'
        f'font-size:0.85em;white-space:nowrap">{html.escape(verdict)}</span>'
    )


def source_text(row: dict[str, Any]) -> str:
    confidence = row.get("confidence")
    return f"{row['paper_source']} [{confidence}]" if confidence else str(row["paper_source"])


def claims_table_html(rows: list[dict[str, Any]]) -> str:
    """A compact claims table: the paper's value over its source, the measurement, the verdict over its reason."""
    body = []
    for r in rows:
        seeds = f" <small>({r['seeds']} seeds)</small>" if r["seeds"] > 1 else ""
        premise = f"<br><small>premise: {html.escape(r['premise'])}</small>" if r.get("premise") else ""
        cells = [
            f"<b>{html.escape(r['id'])}</b><br>{html.escape(r['statement'])}{premise}",
            f"{html.escape(str(r['paper_value']))}<br><small>{html.escape(source_text(r))}</small>",
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
    """Check, judge, glue, show and store a chapter's claims. Call it once per chapter. Returns a DataFrame.

    Raises :class:`ClaimPolicyError` listing every claim that breaks the policy, before anything is shown."""
    import pandas as pd
    from IPython.display import display

    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claim ids must be unique, got {ids}")
    problems = [f"{c.id}: {e}" for c in claims for e in policy_errors(c)]
    if problems:
        raise ClaimPolicyError(f"{len(problems)} claim(s) break the scoreboard policy:\n  " + "\n  ".join(problems))
    for c in claims:
        c.scale = scale
        c.judge()
    resolve_premises(claims)
    rows = [c.to_dict() for c in claims]
    if glue:
        from myst_nb import glue as myst_glue

        for c in claims:
            myst_glue(f"{c.id}_measured", c.measured_text(), display=False)
            myst_glue(f"{c.id}_verdict", c.verdict, display=False)
        myst_glue(f"{chapter}_counts", counts_text(verdict_counts(rows)), display=False)
    reproductions = [r for r in rows if r["kind"] == REPRODUCTION]
    checks = [r for r in rows if r["kind"] == CHECK]
    parts = [f"<p><b>Reproductions</b>: {html.escape(counts_text(verdict_counts(rows)))}</p>",
             claims_table_html(reproductions)]
    if checks:
        parts += ["<p><b>Checks of our implementation</b> (not counted as reproductions)</p>",
                  claims_table_html(checks)]
    bundle = {
        "text/html": "".join(parts),
        "text/plain": "\n".join(f"{r['id']} [{r['kind']}]: {r['measured_text']} -> {r['verdict']}" for r in rows),
        CLAIMS_MIME: {"chapter": chapter, "scale": scale, "claims": rows},
    }
    display(bundle, raw=True)
    columns = ["id", "kind", "statement", "paper_value", "paper_source", "confidence", "measured_text", "verdict",
               "reason"]
    return pd.DataFrame(rows)[columns]
