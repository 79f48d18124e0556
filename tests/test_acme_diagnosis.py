"""Acme's rule-based diagnosis on the labelled log corpus."""
import pytest

from repro.acme.diagnosis import ISOLATE, REPORT, RESTART, ROLLBACK, UNKNOWN, diagnose
from repro.acme.log_corpus import CORPUS


@pytest.mark.parametrize("log, reason, failure_class", CORPUS, ids=[f"{r}-{i}" for i, (_, r, _) in enumerate(CORPUS)])
def test_each_snippet_gets_its_reason_and_class(log, reason, failure_class):
    found = diagnose(log)
    assert (found.reason, found.failure_class) == (reason, failure_class), found.evidence


def test_actions_follow_the_class():
    assert diagnose("NCCL WARN NVLink 0 is down (fatal)").action == ISOLATE
    assert diagnose("Watchdog caught collective operation timeout: WorkNCCL(...)").action == RESTART
    assert diagnose("loss is nan at step 10").action == ROLLBACK
    assert diagnose("KeyError: 'lr'").action == REPORT


def test_an_unmatched_log_is_reported_not_guessed():
    found = diagnose("the job stopped\nexit code 137")
    assert found.failure_class == UNKNOWN and found.action == REPORT
