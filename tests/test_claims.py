import math

import pytest

from repro.claims import (
    DIRECTION_HOLDS,
    NOT_REPRODUCED,
    NOT_TESTED,
    REPRODUCED,
    AtLeast,
    AtMost,
    Claim,
    RatioBand,
    Tolerance,
    record_claims,
)


@pytest.mark.parametrize("rule, value, std, verdict", [
    (AtLeast(1.0), 2.0, None, REPRODUCED),
    (AtLeast(1.0), 0.5, None, NOT_REPRODUCED),
    (AtLeast(1.0, band=(2.5, 3.5)), 1.5, None, DIRECTION_HOLDS),
    (AtLeast(0.0, margin_std=1.0), 0.3, 0.5, NOT_REPRODUCED),  # an improvement inside the seed spread
    (AtLeast(0.0, margin_std=1.0), 0.9, 0.5, REPRODUCED),
    (AtMost(1.0), 0.5, None, REPRODUCED),
    (AtMost(1.0), 1.5, None, NOT_REPRODUCED),
    (RatioBand(28.4, 0.9, 1.1, pivot=1.0), 27.0, None, REPRODUCED),
    (RatioBand(28.4, 0.9, 1.1, pivot=1.0), 2.0, None, DIRECTION_HOLDS),
    (RatioBand(28.4, 0.9, 1.1, pivot=1.0), 0.8, None, NOT_REPRODUCED),
    (Tolerance(97.1, 0.5), 96.8, None, REPRODUCED),
    (Tolerance(97.1, 0.5), 95.0, None, NOT_REPRODUCED),
])
def test_verdicts_are_computed_by_the_rule(rule, value, std, verdict):
    claim = Claim("c", "s", 1.0, "Table 1", value, "x", rule, std=std, seeds=3 if std is not None else 1)
    assert claim.verdict == verdict, claim.reason


def test_missing_measurement_is_not_tested_with_its_reason():
    claim = Claim("c", "s", 1.0, "Fig. 2", None, "x", AtLeast(1), note="needs a GPU")
    assert claim.verdict == NOT_TESTED and claim.reason == "needs a GPU"
    assert Claim("c", "s", 1, "t", math.nan, "x", AtLeast(1)).verdict == NOT_TESTED


def test_spread_rule_needs_several_seeds():
    assert Claim("c", "s", 1, "t", 5.0, "pt", AtLeast(0, margin_std=1), seeds=1).verdict == NOT_TESTED


def test_record_claims_returns_a_table_and_rejects_duplicate_ids():
    claims = [Claim("a", "s", 2, "Tab. 1", 2.1, "x", AtLeast(1)), Claim("b", "s", 2, "Tab. 1", 0.1, "x", AtLeast(1))]
    table = record_claims("demo", claims, "smoke", glue=False)
    assert list(table["verdict"]) == [REPRODUCED, NOT_REPRODUCED]
    assert all(c.scale == "smoke" for c in claims)
    with pytest.raises(ValueError, match="unique"):
        record_claims("demo", claims + claims[:1], "smoke", glue=False)
