"""Acme part 2: a 2-rank torchrun pretraining job with injected failures, recovered automatically."""

import subprocess
import sys
import tempfile
from pathlib import Path

from repro.acme import log_corpus
from repro.acme.diagnosis import FRAMEWORK, INFRASTRUCTURE, ISOLATE, RESTART, ROLLBACK
from repro.acme.pretrain import GPTConfig, batch, checkpoint_stall
from repro.acme.supervisor import run_job

TEST_IDS = {log.id for log in log_corpus.split()[log_corpus.TEST]}


def test_batches_are_a_function_of_seed_step_and_rank():
    cfg = GPTConfig()
    a, b = batch(0, 3, 1, 4, cfg), batch(0, 3, 1, 4, cfg)
    assert all((x == y).all() for x, y in zip(a, b))
    assert not (batch(0, 3, 0, 4, cfg)[0] == a[0]).all()


def test_recovery_after_two_failures_matches_the_clean_run_bitwise(tmp_path):
    clean = run_job(tmp_path / "clean", steps=18)
    faulty = run_job(tmp_path / "faulty", steps=18, injections=["kill@7:1", "hang@13:0"])
    assert clean.status == faulty.status == "finished"
    assert faulty.final_loss == clean.final_loss  # bitwise, not approximately
    kill, hang, last = faulty.attempts
    # each injected failure printed a test-part log of its kind; torchrun and gloo add their own lines
    assert {kill.injected_log, hang.injected_log} <= TEST_IDS
    assert (kill.failure_class, kill.action) == (INFRASTRUCTURE, ISOLATE)
    assert (hang.failure_class, hang.action) == (INFRASTRUCTURE, RESTART)
    assert kill.lost_steps == 6 - 5 and hang.lost_steps == 12 - 10  # checkpoints every 5 steps
    assert last.exit_code == 0 and last.resumed_from_step == 10


def test_framework_errors_are_reported_not_restarted(tmp_path):
    result = run_job(tmp_path / "oom", steps=10, injections=["oom@3:0"])
    assert result.status == "reported" and len(result.attempts) == 1
    assert result.attempts[0].failure_class == FRAMEWORK


def test_a_nan_loss_rolls_back_and_skips_the_batch(tmp_path):
    # the mechanics of a rollback, with a development-part log (the rules are scored on the test part elsewhere)
    result = run_job(tmp_path / "nan", steps=12, injections=["nan@8:1"], log_part=log_corpus.DEV)
    assert result.status == "finished" and result.attempts[0].action == ROLLBACK
    assert 8 not in result.losses and 12 in result.losses


def test_async_checkpoints_block_the_loop_less_than_sync_ones(tmp_path):
    sync = checkpoint_stall("sync", 64, tmp_path / "sync")
    async_ = checkpoint_stall("async", 64, tmp_path / "async")
    assert async_ < sync, (async_, sync)


def test_a_failed_run_leaves_no_scratch_behind(tmp_path):
    """The chapter's scratch folder goes when its kernel exits, even after an error (no cleanup() call reached)."""
    record = tmp_path / "scratch_path.txt"
    script = ("from pathlib import Path\nfrom repro.acme import experiment\n"
              "scratch = experiment.scratch()\n"
              f"Path({str(record)!r}).write_text(scratch.name)\n"
              "(Path(scratch.name) / 'step_1.pt').write_bytes(b'0' * 1024)\n"
              "raise RuntimeError('the run failed')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode != 0 and "the run failed" in proc.stderr
    folder = Path(record.read_text())
    assert folder.parent == Path(tempfile.gettempdir()) and folder.name.startswith("repro-acme-")
    assert not folder.exists()
