"""Acme's rule-based diagnosis, and the development / test split of the failure-log corpus."""
import pytest

from repro.acme import log_corpus
from repro.acme.diagnosis import FRAMEWORK, INFRASTRUCTURE, ISOLATE, LOSS, REPORT, RESTART, ROLLBACK, UNKNOWN, diagnose

DEV = log_corpus.split()[log_corpus.DEV]


def test_the_corpus_parses_with_known_classes_and_unique_ids():
    logs = log_corpus.load()
    assert len(logs) >= 60
    assert {log.failure_class for log in logs} == set(log_corpus.CLASSES)
    assert all(log.text.strip() for log in logs)
    assert len({log.id for log in logs}) == len(logs)


def test_the_split_is_seeded_stratified_disjoint_and_complete():
    parts = log_corpus.split()
    dev, test = ({log.id for log in parts[p]} for p in (log_corpus.DEV, log_corpus.TEST))
    assert not dev & test and dev | test == {log.id for log in log_corpus.load()}
    for cls in log_corpus.CLASSES:
        n_dev = sum(log.failure_class == cls for log in parts[log_corpus.DEV])
        n_test = sum(log.failure_class == cls for log in parts[log_corpus.TEST])
        assert n_dev == (n_dev + n_test) // 2 and n_test >= 1
    log_corpus.split.cache_clear()
    assert log_corpus.split() == parts  # same seed, same split
    assert log_corpus.split(seed=1) != parts


@pytest.mark.parametrize("log", DEV, ids=[log.id for log in DEV])
def test_the_rules_get_the_class_of_each_development_log(log):
    """The rules were revised against this part only; the test part is scored in the chapter, not asserted here."""
    found = diagnose(log.text)
    assert found.failure_class == log.failure_class, found.evidence


def test_injected_failures_print_test_part_logs_of_their_kind():
    test_ids = {log.id for log in log_corpus.split()[log_corpus.TEST]}
    for kind, reasons in log_corpus.INJECTION_REASONS.items():
        drawn = log_corpus.injection_log(kind, 0, seed=3)
        assert drawn.id in test_ids and drawn.reason in reasons
        assert log_corpus.injection_log(kind, 0, seed=3) == drawn


def test_the_auto_recovery_share_counts_ground_truth_not_diagnoses():
    logs = [log_corpus.FailureLog("a", "NodeFailure", INFRASTRUCTURE, "srun: error: Node failure on n1"),
            log_corpus.FailureLog("b", "ECCError", INFRASTRUCTURE, "something odd happened"),  # missed: unknown
            log_corpus.FailureLog("c", "LossAnomaly", LOSS, "loss is nan at step 3"),
            log_corpus.FailureLog("d", "OutOfMemory", FRAMEWORK, "torch.OutOfMemoryError: CUDA out of memory.")]
    score = log_corpus.score(logs)
    assert (score["auto_recovered"], score["recoverable"]) == (2, 3)
    assert score["auto_recovered_share"] == pytest.approx(200 / 3)
    assert score["class_accuracy"] == 75.0 and score["per_class"][INFRASTRUCTURE] == (1, 2)


def test_actions_follow_the_class():
    assert diagnose("NCCL WARN NVLink 0 is down (fatal)").action == ISOLATE
    assert diagnose("Watchdog caught collective operation timeout: WorkNCCL(...)").action == RESTART
    assert diagnose("loss is nan at step 10").action == ROLLBACK
    assert diagnose("KeyError: 'lr'").action == REPORT
    assert diagnose("[rank3]: KeyError: 'lr'").failure_class != UNKNOWN  # torchrun's rank prefix is stripped


def test_a_root_cause_wins_over_the_timeouts_it_causes_elsewhere():
    log = ("RuntimeError: Rank 2 has a NaN in its gradients for parameter w at step 9\n"
           "[E ProcessGroupNCCL.cpp:563] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1)")
    assert diagnose(log).failure_class == LOSS


def test_an_unmatched_log_is_reported_not_guessed():
    found = diagnose("the job stopped\nexit code 137")
    assert found.failure_class == UNKNOWN and found.action == REPORT
