"""The AcmeTrace job-trace loader on a fixture written in the exact upstream schema (Kalos variant)."""
from pathlib import Path

import pytest

from repro.acme import trace

FIXTURE = Path(__file__).parent / "fixtures" / "trace_kalos.csv"


def test_fixture_loads_with_derived_columns_checked():
    frame = trace.load_trace(FIXTURE, "kalos")
    assert len(frame) == 5 and frame["failed"].sum() == 1
    assert str(frame["start_time"].dt.tz) == "UTC"
    shares = trace.share_by_type(frame)
    assert shares.loc["Pretrain", "GPU time (%)"] > 99 and shares["jobs (%)"].sum() == pytest.approx(100)


def test_schema_violations_are_reported(tmp_path):
    broken = tmp_path / "trace_kalos.csv"
    broken.write_text(FIXTURE.read_text().replace(",gpu_time,", ",gpu_hours,"))
    with pytest.raises(trace.TraceSchemaError, match="missing columns"):
        trace.load_trace(broken, "kalos")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text(FIXTURE.read_text().replace("36864000", "1"))
    with pytest.raises(trace.TraceSchemaError, match="gpu_time"):
        trace.load_trace(wrong, "kalos")
    with pytest.raises(trace.TraceSchemaError, match="unknown job types"):
        trace.load_trace(_write(tmp_path, "Debug", "Training"), "kalos")


def _write(folder, old, new):
    path = folder / "renamed.csv"
    path.write_text(FIXTURE.read_text().replace(old, new))
    return path


def test_a_missing_trace_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    monkeypatch.setattr(trace.data, "mirrors", lambda: [])
    with pytest.raises(trace.DataNotFoundError, match="trace_seren.csv") as err:
        trace.trace_path("seren")
    assert "no checksum is pinned" in str(err.value) and str(tmp_path / "acmetrace" / "job_trace") in str(err.value)


def test_a_cached_trace_resolves_without_a_checksum(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    monkeypatch.setattr(trace.data, "mirrors", lambda: [])
    folder = tmp_path / "acmetrace" / "job_trace"
    folder.mkdir(parents=True)
    (folder / "trace_kalos.csv").write_text(FIXTURE.read_text())
    assert len(trace.load_trace(trace.trace_path("kalos"), "kalos")) == 5


def test_synthetic_trace_matches_the_published_marginals():
    from repro.acme import characterization, synthetic

    summary = characterization.cluster_summary()
    for cluster in ("Seren", "Kalos"):
        frame = synthetic.generate(summary, cluster, jobs=20_000, seed=0)
        got, row = synthetic.marginals(frame), summary.loc[cluster]
        assert abs(got["med_run_time_gpu"] / row["med_run_time_gpu"] - 1) < 0.15
        assert abs(got["complete_rate_gpu"] - row["complete_rate_gpu"]) < 0.02
        assert abs(got["fail_rate_gpu"] - row["fail_rate_gpu"]) < 0.02
        assert 0.5 < got["avg_run_time_gpu"] / row["avg_run_time_gpu"] < 2  # heavy tail: the mean is loose
        assert list(frame.columns) == list(trace.COMMON_COLUMNS)
        cpu_share = (frame["gpu_num"] == 0).mean()
        assert abs(cpu_share - row["cpu_job_num"] / row["job_num"]) < 0.01


def test_job_trace_choice(tmp_path, monkeypatch):
    from repro.acme import characterization

    summary = characterization.cluster_summary()  # resolved before the cache is pointed elsewhere
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    monkeypatch.setattr(trace.data, "mirrors", lambda: [])
    frame, kind = trace.job_trace("Kalos", "auto", summary, 500, 0)
    assert kind == "synthetic" and len(frame) == 500
    with pytest.raises(trace.DataNotFoundError):
        trace.job_trace("Kalos", "real", summary, 500, 0)
    folder = tmp_path / "acmetrace" / "job_trace"
    folder.mkdir(parents=True)
    (folder / "trace_kalos.csv").write_text(FIXTURE.read_text())
    assert trace.job_trace("Kalos", "auto", summary, 500, 0)[1] == "real"
