import hashlib
import os
import stat

import pytest

from repro import data


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A registered one-file dataset with a read-only mirror and an upstream file:// URL."""
    payload = b"node,label\n0,1\n"
    upstream = tmp_path / "upstream" / "toy.csv"
    upstream.parent.mkdir()
    upstream.write_bytes(payload)
    mirror = tmp_path / "mirror"
    (mirror / "toyset").mkdir(parents=True)
    mirrored = mirror / "toyset" / "toy.csv"
    mirrored.write_bytes(payload)
    mirrored.chmod(stat.S_IRUSR | stat.S_IRGRP)
    ds = data.Dataset("toy", "toyset", (data.DataFile("toy.csv", hashlib.sha256(payload).hexdigest(),
                                                      upstream.as_uri(), len(payload)),), "CC0", "here", "a toy")
    monkeypatch.setitem(data.REGISTRY, "toy", ds)
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "mirrors", lambda: [mirror])
    return tmp_path, mirrored, upstream


def test_mirror_is_copied_into_the_writable_cache(toy):
    tmp, mirrored, _ = toy
    folder = data.resolve("toy", download=False)
    cached = folder / "toy.csv"
    assert cached.read_bytes() == mirrored.read_bytes()
    assert os.access(cached, os.W_OK) and cached != mirrored


def test_cache_is_used_first(toy, monkeypatch):
    data.resolve("toy", download=False)
    monkeypatch.setattr(data, "mirrors", lambda: [])
    assert (data.resolve("toy", download=False) / "toy.csv").exists()


def test_corrupted_cache_is_detected_and_replaced(toy):
    folder = data.resolve("toy", download=False)
    (folder / "toy.csv").write_bytes(b"tampered")
    data.resolve("toy", download=False)
    assert (folder / "toy.csv").read_bytes() == b"node,label\n0,1\n"


def test_download_is_the_last_resort_and_is_checksummed(toy, monkeypatch):
    monkeypatch.setattr(data, "mirrors", lambda: [])
    assert (data.resolve("toy", download=True) / "toy.csv").exists()


def test_bad_download_is_never_used(toy, monkeypatch):
    _, _, upstream = toy
    upstream.write_bytes(b"something else")
    monkeypatch.setattr(data, "mirrors", lambda: [])
    with pytest.raises(data.DataNotFoundError, match="checksum mismatch"):
        data.resolve("toy", download=True)
    assert not (data.data_cache() / "toyset" / "toy.csv").exists()


def test_error_names_dataset_files_and_destination(toy, monkeypatch):
    monkeypatch.setattr(data, "mirrors", lambda: [])
    with pytest.raises(data.DataNotFoundError) as err:
        data.resolve("toy", download=False)
    message = str(err.value)
    assert "'toy'" in message and "toy.csv" in message and str(data.data_cache() / "toyset") in message
    assert "REPRO_DATA" in message


def test_cora_resolves_from_the_shared_mirror_and_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    if not any((m / "planetoid" / "Cora").exists() for m in data.mirrors()):
        pytest.skip("no Cora mirror on this machine")
    graph = data.load_cora()
    assert graph.num_nodes == 2708 and graph.x.shape[1] == 1433 and int(graph.train_mask.sum()) == 140


def test_missing_citeseer_stops_with_the_files_and_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    monkeypatch.setenv("REPRO_OFFLINE", "1")
    monkeypatch.setattr(data, "mirrors", lambda: [])
    from repro import graphs

    with pytest.raises(data.DataNotFoundError) as err:
        graphs.planetoid("citeseer")  # the graph chapters' path for -p graph citeseer
    message = str(err.value)
    assert "'citeseer'" in message and "raw/ind.citeseer.test.index" in message
    assert str(tmp_path / "planetoid" / "CiteSeer") in message and "kimiyoung/planetoid" in message
