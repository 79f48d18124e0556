import math
import statistics

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from repro.claims import (
    CHECK_FAILED,
    CHECK_PASSED,
    DIRECTION_HOLDS,
    MIN_SEEDS,
    NOT_REPRODUCED,
    NOT_TESTED,
    REPRODUCED,
    AtLeast,
    AtMost,
    Claim,
    ClaimPolicyError,
    Equivalent,
    NonInferior,
    RatioBand,
    Superior,
    Tolerance,
    policy_errors,
    record_claims,
    t_bounds,
    verdict_counts,
)

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)
samples_st = st.lists(finite, min_size=MIN_SEEDS, max_size=12)


def claim(rule, measured=None, samples=None, states="direction", **kw):
    return Claim("c", "s", 1.0, "Table 1", measured, "x", rule, samples=samples, states=states, confidence="paper",
                 **kw)


@pytest.mark.parametrize("rule, value, verdict", [
    (AtLeast(1.0), 2.0, REPRODUCED),
    (AtLeast(1.0), 1.0, NOT_REPRODUCED),  # no effect is not an effect
    (AtLeast(1.0), 0.5, NOT_REPRODUCED),
    (AtLeast(1.0, band=(2.5, 3.5), reference=3.0), 1.5, DIRECTION_HOLDS),
    (AtMost(1.0), 0.5, REPRODUCED),
    (AtMost(1.0), 1.5, NOT_REPRODUCED),
    (RatioBand(28.4, 0.9, 1.1, pivot=1.0), 27.0, REPRODUCED),
    (RatioBand(28.4, 0.9, 1.1, pivot=1.0), 2.0, DIRECTION_HOLDS),
    (RatioBand(28.4, 0.9, 1.1, pivot=1.0), 0.8, NOT_REPRODUCED),
    (Tolerance(97.1, 0.5), 96.8, REPRODUCED),
    (Tolerance(97.1, 0.5), 95.0, NOT_REPRODUCED),
])
def test_verdicts_are_computed_by_the_rule(rule, value, verdict):
    c = claim(rule, value, states="magnitude" if getattr(rule, "band", None) or isinstance(rule, RatioBand)
              else "direction")
    assert c.verdict == verdict, c.reason


def test_missing_measurement_is_not_tested_with_its_reason():
    c = claim(AtLeast(1), None, note="needs a GPU")
    assert c.verdict == NOT_TESTED and c.reason == "needs a GPU"
    assert claim(AtLeast(1), math.nan).verdict == NOT_TESTED


def test_statistical_rules_need_three_seeds():
    assert claim(Superior(), samples=[5.0, 6.0]).verdict == NOT_TESTED
    assert claim(Superior(), samples=[5.0, 6.0, 5.5]).verdict == REPRODUCED


def test_an_improvement_inside_the_seed_spread_is_not_reproduced():
    # mean +0.3 with a spread of about 1: the 90 % lower bound is below zero
    assert claim(Superior(), samples=[1.3, -0.7, 0.3, 1.0, -0.4]).verdict == NOT_REPRODUCED


def test_samples_give_mean_std_and_seed_count():
    c = claim(Superior(), samples=[1.0, 2.0, 3.0])
    assert c.measured == 2.0 and c.seeds == 3 and c.std == pytest.approx(1.0)


# ---- properties of every rule ------------------------------------------------------------------------------------

@given(samples_st)
def test_t_bounds_bracket_the_mean(samples):
    mean, lower, upper = t_bounds(samples)
    assert lower <= mean + 1e-9 and upper >= mean - 1e-9
    assert mean - lower == pytest.approx(upper - mean, abs=1e-6)


@given(samples_st)
def test_superior_reproduced_iff_lower_bound_above_zero(samples):
    _, lower, _ = t_bounds(samples)
    assert (claim(Superior(), samples=samples).verdict == REPRODUCED) == (lower > 0)


@given(samples_st, st.floats(min_value=0.01, max_value=100))
def test_non_inferior_reproduced_iff_lower_bound_within_delta(samples, delta):
    _, lower, _ = t_bounds(samples)
    c = claim(NonInferior(delta), samples=samples, states="parity")
    assert (c.verdict == REPRODUCED) == (lower >= -delta)


@given(samples_st, st.floats(min_value=0.01, max_value=100))
def test_equivalent_implies_non_inferior_and_needs_both_bounds(samples, delta):
    _, lower, upper = t_bounds(samples)
    eq = claim(Equivalent(delta), samples=samples, states="parity").verdict
    ni = claim(NonInferior(delta), samples=samples, states="parity").verdict
    assert (eq == REPRODUCED) == (lower >= -delta and upper <= delta)
    assert eq != REPRODUCED or ni == REPRODUCED


@given(samples_st, st.floats(min_value=0.5, max_value=1e3))
def test_shifting_samples_up_never_hurts_superiority(samples, shift):
    before = claim(Superior(), samples=samples).verdict
    after = claim(Superior(), samples=[s + shift for s in samples]).verdict
    assert not (before == REPRODUCED and after != REPRODUCED)


@given(samples_st)
def test_superiority_is_not_judged_on_the_mean(samples):
    assume(statistics.stdev(samples) > 1e-6)
    # a positive mean alone never suffices: the verdict follows the interval, so the same mean with a wider spread
    # can only lose
    wide = [statistics.fmean(samples) + 10 * (s - statistics.fmean(samples)) for s in samples]
    narrow_ok = claim(Superior(), samples=samples).verdict == REPRODUCED
    wide_ok = claim(Superior(), samples=wide).verdict == REPRODUCED
    assert narrow_ok or not wide_ok


@given(finite, finite)
def test_at_least_and_at_most_are_mirrors(value, threshold):
    up = claim(AtLeast(threshold), value).verdict
    down = claim(AtMost(-threshold), -value).verdict
    assert up == down
    assert (up == REPRODUCED) == (value > threshold)


@given(st.floats(min_value=1.1, max_value=100), st.floats(min_value=0.01, max_value=1e3))
def test_ratio_band_never_reproduces_no_effect_or_the_wrong_side(reference, value):
    rule = RatioBand(reference, (1 + reference) / (2 * reference), 1.5, pivot=1.0)
    assert not policy_errors(claim(rule, value, states="magnitude"))
    verdict = claim(rule, value, states="magnitude").verdict
    if value <= 1.0:
        assert verdict == NOT_REPRODUCED
    if verdict == REPRODUCED:
        assert rule.lo <= value / reference <= rule.hi


@given(st.integers(-1000, 1000), st.integers(0, 100), st.integers(-1000, 1000))  # exact, so rounding cannot break it
def test_tolerance_is_symmetric(target, tol, offset):
    rule = Tolerance(target, tol)
    assert claim(rule, target + offset).verdict == claim(rule, target - offset).verdict


@given(st.floats(min_value=1.01, max_value=1e3), st.floats(min_value=0.0, max_value=1.0))
def test_magnitude_bands_must_keep_halfway_from_no_effect(reference, fraction):
    lower = 1.0 + fraction * (reference - 1.0)
    errors = policy_errors(claim(AtLeast(1.0, band=(lower, 2 * reference), reference=reference), 2.0,
                                 states="magnitude"))
    assert bool(errors) == (lower < 1.0 + (reference - 1.0) / 2)


@given(st.floats(min_value=-100, max_value=-0.01), st.floats(min_value=0.0, max_value=1.0))
def test_magnitude_bands_below_no_effect_mirror(reference, fraction):
    upper = fraction * reference
    errors = policy_errors(claim(Superior(band=(2 * reference, upper), reference=reference), samples=[-1, -2, -3],
                                 states="magnitude"))
    assert bool(errors) == (upper > reference / 2)


# ---- the policy ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, fragment", [
    # a 1.01x speed-up must not reproduce a 2x claim: the band's lower edge sits at least halfway (1.5)
    (claim(AtLeast(1.0, band=(1.0, 4.0), reference=2.0), 1.01, states="magnitude"), "lower edge must be >= 1.5"),
    (claim(AtLeast(1.0), 27.5, states="magnitude"), "needs a band"),
    (claim(RatioBand(3.18, 0.5, 2.0, pivot=1.0), 2.0, states="magnitude"), "halfway"),
    (claim(RatioBand(3.18, 0.8, 1.2), 2.0, states="magnitude"), "pivot"),
    (claim(AtLeast(1.0, band=(2, 3), reference=2.5), 2.0, states="direction"), "takes no band"),
    (claim(AtLeast(-2.0), -1.0, states="parity"), "parity claim needs"),
    (claim(Superior(), measured=1.0, states="direction"), "pass samples"),
    (claim(AtLeast(0.0), 1.0, std=0.5, seeds=3), "statistical rule"),
    (Claim("c", "s", 1, "Table 1", 2.0, "x", AtLeast(1.0)), "confidence"),
    (Claim("c", "s", 1, "", 2.0, "x", AtLeast(1.0), confidence="paper"), "source"),
    (claim(AtLeast(1.0), 2.0, kind="proof"), "kind must be"),
])
def test_record_claims_rejects_policy_breaking_claims(bad, fragment):
    assert any(fragment in e for e in policy_errors(bad)), policy_errors(bad)
    with pytest.raises(ClaimPolicyError, match="break the scoreboard policy"):
        record_claims("demo", [bad], "smoke", glue=False)


def test_checks_pass_or_fail_and_never_count_as_reproduced():
    ok = Claim("k1", "bytes equal the formula", "formula", "ours", 1.0, "x", Tolerance(1.0, 0.0), kind="check")
    bad = Claim("k2", "bytes equal the formula", "formula", "ours", 1.1, "x", Tolerance(1.0, 0.0), kind="check")
    real = claim(AtLeast(1.0), 2.0)
    table = record_claims("demo", [ok, bad, real], "smoke", glue=False)
    assert list(table.verdict) == [CHECK_PASSED, CHECK_FAILED, REPRODUCED]
    counts = verdict_counts([c.to_dict() for c in (ok, bad, real)])
    assert counts[REPRODUCED] == 1 and counts[CHECK_PASSED] == 1 and counts[CHECK_FAILED] == 1


def test_a_failed_premise_leaves_its_dependants_not_tested():
    premise = Claim("a0", "the image is used", "yes", "Table 1", None, "pt", Superior(), samples=[0.1, -0.2, 0.05],
                    confidence="paper")
    dependant = Claim("a1", "beats the baseline", "+1", "Table 1", None, "pt", Superior(), samples=[5, 6, 7],
                      confidence="paper", premise="a0")
    record_claims("demo", [premise, dependant], "smoke", glue=False)
    assert premise.verdict == NOT_REPRODUCED
    assert dependant.verdict == NOT_TESTED and "premise failed" in dependant.reason
    holding = Claim("a0", "the image is used", "yes", "Table 1", None, "pt", Superior(), samples=[5, 6, 7],
                    confidence="paper")
    dependant = Claim("a1", "beats", "+1", "Table 1", None, "pt", Superior(), samples=[5, 6, 7], confidence="paper",
                      premise="a0")
    record_claims("demo", [holding, dependant], "smoke", glue=False)
    assert dependant.verdict == REPRODUCED
    untested = Claim("a0", "the image is used", "yes", "Table 1", None, "pt", Superior(), samples=[5, 6],
                     confidence="paper")
    dependant = Claim("a1", "beats", "+1", "Table 1", None, "pt", Superior(), samples=[5, 6, 7], confidence="paper",
                      premise="a0")
    record_claims("demo", [untested, dependant], "smoke", glue=False)
    assert dependant.verdict == NOT_TESTED and "was not tested" in dependant.reason
    with pytest.raises(ClaimPolicyError, match="unknown premise"):
        record_claims("demo", [claim(AtLeast(1), 2.0, premise="nope")], "smoke", glue=False)


def test_record_claims_returns_a_table_and_rejects_duplicate_ids():
    claims = [claim(AtLeast(1), 2.1), Claim("b", "s", 2, "Tab. 1", 0.1, "x", AtLeast(1), confidence="code")]
    table = record_claims("demo", claims, "smoke", glue=False)
    assert list(table["verdict"]) == [REPRODUCED, NOT_REPRODUCED]
    assert all(c.scale == "smoke" for c in claims)
    with pytest.raises(ValueError, match="unique"):
        record_claims("demo", claims + claims[:1], "smoke", glue=False)
