"""The Acme chapter's claims obey the scoreboard policy at every scale, and say what they are."""
import pytest

from repro.acme.report import claims, halfway_ratio_band
from repro.claims import CHECK, NOT_TESTED, REPRODUCED, policy_errors

STATS = {"median_gpu_util_seren": 99.0, "median_gpu_util_kalos": 97.0, "median_gpu_util_philly": 48.6,
         "ib_send_idle_share": 63.8, "power_above_400w_kalos": 12.6, "power_above_400w_seren": 8.0}
RECOVERY = {"failures": 2, "faulty_loss": 2.5, "clean_loss": 2.5}
CHECKPOINT = {"size_mb": 256, "sync_s": 1.0, "async_s": 0.1}
DIAGNOSIS = {"recoverable": 22, "auto_recovered_share": 72.7}
LOCALISATION = {"world": 5, "trials": [{"found exactly": True}] * 4 + [{"found exactly": False}]}


def build(localisation=LOCALISATION, makespan=None):
    return {c.id: c for c in claims(STATS, RECOVERY, CHECKPOINT, localisation,
                                    makespan or {1: (176.0, 100.0), 4: (130.0, 100.0)}, DIAGNOSIS)}


@pytest.mark.parametrize("localisation", [LOCALISATION, None], ids=["default", "smoke"])
def test_every_claim_obeys_the_policy(localisation):
    for c in build(localisation).values():
        assert policy_errors(c) == [], c.id


def test_checks_are_not_reproductions():
    built = build()
    for cid in ("a1_gpu_util_seren", "a1_gpu_util_kalos", "a2_recovery_bitwise"):
        assert built[cid].kind == CHECK
    assert all(c.confidence == "secondary" for c in built.values() if c.kind != CHECK)


def test_localisation_is_judged_on_its_trials_and_left_out_without_them():
    assert build()["a2_localisation"].seeds == 5
    assert build(None)["a2_localisation"].verdict == NOT_TESTED


def test_the_trend_claim_catches_a_gain_that_shrinks_with_nodes():
    built = build(makespan={1: (176.0, 100.0), 4: (130.0, 100.0)})  # 1.76x then 1.30x: the opposite trend
    assert built["a3_makespan_trend"].measured == pytest.approx(1.30 / 1.76)
    assert built["a3_makespan_trend"].verdict != REPRODUCED
    assert build(makespan={1: (130.0, 100.0), 4: (180.0, 100.0)})["a3_makespan_trend"].verdict == REPRODUCED


def test_halfway_bands():
    lo, hi = halfway_ratio_band(1.3)
    assert lo * 1.3 >= 1.15 and lo * 1.3 < 1.151 and hi == pytest.approx(1 / lo, abs=1e-3)
