"""The dataset registry: where each file comes from, its checksum, its license, and how it is resolved.

Resolution order for every file: the writable cache (``REPRO_DATA``, default ``data/cache``), then known read-only
mirrors (``REPRO_MIRRORS``, then ``../shared/data`` beside the checkout), then a download from the upstream URL.
Whatever the source, the sha256 must match before the file is used; a read-only mirror is copied into the cache
first. If every source fails, :class:`DataNotFoundError` names the dataset, the files and where to put them.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from repro.paths import REPO_ROOT, data_cache


class DataNotFoundError(FileNotFoundError):
    """No source could supply a verified copy of a dataset file. The message says what to do."""


@dataclass(frozen=True)
class DataFile:
    path: str  # relative to the dataset's folder in the cache and in mirrors
    sha256: str | None  # None: no checksum could be pinned; never downloaded, and its loader checks its schema
    url: str
    size: int


@dataclass(frozen=True)
class Dataset:
    name: str
    folder: str  # relative to the cache root and to each mirror root
    files: tuple[DataFile, ...]
    license: str
    upstream: str
    description: str


def _planetoid(name: str, sums: dict[str, tuple[str, int]]) -> Dataset:
    base = "https://github.com/kimiyoung/planetoid/raw/master/data"
    files = tuple(DataFile(f"raw/ind.{name.lower()}.{ext}", sha, f"{base}/ind.{name.lower()}.{ext}", size)
                  for ext, (sha, size) in sums.items())
    return Dataset(name.lower(), f"planetoid/{name}", files, "MIT (planetoid repository)",
                   "https://github.com/kimiyoung/planetoid", f"{name} citation graph, raw Planetoid split files")


CORA = _planetoid("Cora", {
    "x": ("23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab", 22119),
    "y": ("94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1", 4054),
    "tx": ("b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a", 148025),
    "ty": ("41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad", 28135),
    "allx": ("9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543", 257305),
    "ally": ("2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71", 47959),
    "graph": ("58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d", 59847),
    "test.index": ("297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875", 5000),
})

# sizes are not recorded (0): the files were not available here to measure; the checksums are pinned
CITESEER = _planetoid("CiteSeer", {
    "x": ("d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6", 0),
    "y": ("8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924", 0),
    "tx": ("539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21", 0),
    "ty": ("55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce", 0),
    "allx": ("2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668", 0),
    "ally": ("f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95", 0),
    "graph": ("d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7", 0),
    "test.index": ("2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4", 0),
})

ACMETRACE_SUMMARY = Dataset(
    "acmetrace_summary", "acmetrace",
    (DataFile("cluster_summary.csv", "cde7a7d4ba1596ea165cf4583137d2095020abebbc26b3cd834284c16e8e6ecf",
              "https://github.com/InternLM/AcmeTrace/raw/main/data/cluster_summary.csv", 0),),
    "CC-BY-4.0", "https://github.com/InternLM/AcmeTrace",
    "Per-cluster job statistics for Seren, Kalos, Philly and Helios")

FHA_KITCHENS = Dataset(
    "fha_kitchens", "fha_kitchens",
    (DataFile("val_data.csv", "aba2b7ddf4a1c2948004b46341200f9e7afd3a5ecbb53718d00c21a60698fa10",
              "https://github.com/superZ678/FHA-Kitchens/raw/main/data/val_data.csv", 3466113),
     DataFile("action_triplet.csv", "f4e657d77c7e4ab196f434a7d6eebabb2da804e67115c18916be087b8a3611aa",
              "https://github.com/superZ678/FHA-Kitchens/raw/main/data/action_triplet.csv", 49466)),
    "MIT", "https://github.com/superZ678/FHA-Kitchens", "FHA-Kitchens validation annotations and action triplets")


# The telemetry CDFs that AcmeTrace ships as pickles (data/utilization/util_pkl/*.pkl), as CSV: the conversion is
# not published upstream, so these have no download URL and resolve from the cache or a mirror only.
_ACME_CDFS = (
    ("gpu_power_kalos.csv", "6bb633249740ba977cfa864a9a24ca2f5547ab0fdc81912b9e20732ca5dbfbbe"),
    ("gpu_power_seren.csv", "442bd5bd472514bf66af5d361bb260f16175f8e4547043273bdcdc236e99bcbe"),
    ("gpu_temp_kalos.csv", "0e7d57e7622004b36ee75ff79472352492582e5df0537872627ba28f3ae5adbc"),
    ("gpu_temp_seren.csv", "694ed0843ac5b8b69c6f72850307fd42e38eb41ac57681352708bccd7a0fe2a9"),
    ("ib_seren.csv", "a350f49a2887717258505ec1a17c46e8ad0bbb448f136999e4545fd3f513bcbb"),
    ("server_power.csv", "01315fe8a48307ad259a0b8b8a60e6c32597987d0cc75e2841b6dcd3b40dd84a"),
    ("util_cpu_mem_kalos.csv", "825f22b93b7930bcdebcc2d24d289bd09585dd3e593f639b94649c90f9548cf2"),
    ("util_cpu_mem_seren.csv", "39e6e3b7daac3c57a547f7699ef2319601086ed12c87d61636730bb3571330c2"),
    ("util_gpu_kalos.csv", "279a374c51019c7d207a1938da4f826ccd1ebeed151dbf9439b31bafc1fcd375"),
    ("util_gpu_kalos_full.csv", "78cc5e642f48266df57b9f2fbf0f06f2fa5f30c1c7cf5380224593a144ec509e"),
    ("util_gpu_philly.csv", "90c5ee2aad3fda44ab37d799554f6178d9c55929bd3ef0c76485a13eb0da7a1f"),
    ("util_gpu_seren.csv", "a3db22227d4640cc47c3e404ab5582722a0853cb9d0ec8984cbf1153b39e3818"),
)
ACMETRACE_TELEMETRY = Dataset(
    "acmetrace_telemetry", "acmetrace/util_csv",
    tuple(DataFile(name, sha, "", 0) for name, sha in _ACME_CDFS),
    "CC-BY-4.0", "https://github.com/InternLM/AcmeTrace (data/utilization/util_pkl, converted to CSV)",
    "AcmeTrace telemetry CDFs (GPU/CPU/memory utilisation, InfiniBand, power, temperature), 1000 points each")

# The job traces are too large to carry (99 MB and 9 MB) and were never available here to pin a checksum: they
# resolve from the cache or a mirror only, and repro.acme.trace validates their schema instead.
ACMETRACE_TRACES = tuple(Dataset(
    f"acmetrace_trace_{cluster}", "acmetrace/job_trace",
    (DataFile(f"trace_{cluster}.csv", None,
              f"https://github.com/InternLM/AcmeTrace/raw/main/data/job_trace/trace_{cluster}.csv", size),),
    "CC-BY-4.0", "https://github.com/InternLM/AcmeTrace", f"AcmeTrace job trace of {cluster.title()}")
    for cluster, size in (("seren", 99_000_000), ("kalos", 9_000_000)))

REGISTRY: dict[str, Dataset] = {d.name: d for d in (CORA, CITESEER, ACMETRACE_SUMMARY, ACMETRACE_TELEMETRY,
                                                    FHA_KITCHENS, *ACMETRACE_TRACES)}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def mirrors() -> list[Path]:
    """Read-only mirror roots, in the order they are tried."""
    roots = [Path(p) for p in os.environ.get("REPRO_MIRRORS", "").split(os.pathsep) if p]
    roots += [REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    seen, out = set(), []
    for r in roots:
        r = r.expanduser().resolve()
        if r not in seen and r.is_dir():
            seen.add(r)
            out.append(r)
    return out


def _download(url: str, target: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
        shutil.copyfileobj(response, out)


def _place(source: Path | None, url: str | None, dest: Path, expected: str | None, timeout: float) -> str | None:
    """Copy or download into a temporary file beside ``dest``, verify it, then move it in. Returns an error."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".partial-")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        if source is not None:
            shutil.copyfile(source, tmp_path)
        else:
            _download(url, tmp_path, timeout)
        got = sha256(tmp_path)
        if expected is not None and got != expected:
            return f"checksum mismatch (got {got[:12]}..., expected {expected[:12]}...)"
        os.chmod(tmp_path, 0o644)
        tmp_path.replace(dest)
        return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        tmp_path.unlink(missing_ok=True)


def _fill_from_sources(ds: Dataset, f: DataFile, dest: Path, download: bool, timeout: float,
                       tried: list[str]) -> bool:
    """Try each mirror, then upstream, for one file. Appends what failed to ``tried``."""
    for root in mirrors():
        candidate = root / ds.folder / f.path
        if candidate.exists():
            err = _place(candidate, None, dest, f.sha256, timeout)
            if err is None:
                return True
            tried.append(f"mirror {candidate}: {err}")
    if not f.url:
        tried.append("download: this file has no upstream URL (a converted file); only a cache or mirror holds it")
        return False
    if f.sha256 is None:
        tried.append("download: no checksum is pinned for this file, so it is not fetched automatically")
        return False
    if not download:
        tried.append("download: disabled (REPRO_OFFLINE is set)")
        return False
    err = _place(None, f.url, dest, f.sha256, timeout)
    if err is None:
        return True
    tried.append(f"download {f.url}: {err}")
    return False


# Every file resolved in this process, "<dataset>/<file>" -> its pinned sha256 (or "unpinned, N bytes"): the run's
# provenance lists them, and the execution cache folds them into the chapter's fingerprint.
USED: dict[str, str] = {}


def _file_identity(ds: Dataset, f: DataFile) -> str:
    dest = data_cache() / ds.folder / f.path
    if not dest.exists():
        return "missing"
    return f.sha256 if f.sha256 else f"unpinned, {dest.stat().st_size} bytes"


def used_files() -> dict[str, str]:
    return dict(sorted(USED.items()))


def current_identities(keys) -> dict[str, str]:
    """What the files named like :data:`USED`'s keys are now (a changed pin or a replaced unpinned file differs)."""
    out = {}
    for key in keys:
        name, _, path = key.partition("/")
        ds = REGISTRY.get(name)
        match = [f for f in ds.files if f.path == path] if ds else []
        out[key] = _file_identity(ds, match[0]) if match else "unregistered"
    return out


def resolve(name: str, download: bool | None = None, timeout: float = 30.0) -> Path:
    """Return the cache folder of dataset ``name`` with every file present and verified.

    ``download`` defaults to on unless ``REPRO_OFFLINE`` is set. A cached file with a wrong checksum is never
    used: it is replaced from a mirror or upstream, or reported.
    """
    if name not in REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; registered: {', '.join(REGISTRY)}")
    ds = REGISTRY[name]
    if download is None:
        download = not os.environ.get("REPRO_OFFLINE")
    folder = data_cache() / ds.folder
    failures: list[str] = []
    for f in ds.files:
        dest = folder / f.path
        tried: list[str] = []
        if dest.exists():
            if f.sha256 is None or sha256(dest) == f.sha256:
                continue
            tried.append(f"cache: {dest} is corrupted (checksum mismatch); replacing it")
            dest.unlink()
        if not _fill_from_sources(ds, f, dest, download, timeout, tried):
            failures.append(f"  {f.path}: " + "; ".join(tried or ["no mirror holds it"]))
    if failures:
        raise DataNotFoundError(
            f"dataset {name!r} ({ds.description}) is missing files.\n" + "\n".join(failures) + "\n"
            f"Place verified copies under {folder}/ (upstream: {ds.upstream}), or set REPRO_DATA to a cache that "
            f"holds them, or REPRO_MIRRORS to a folder laid out as <mirror>/{ds.folder}/..."
        )
    for f in ds.files:
        USED[f"{name}/{f.path}"] = _file_identity(ds, f)
    return folder


def load_planetoid(name: str = "cora"):
    """A Planetoid citation graph (``cora`` or ``citeseer``) as a torch-geometric ``Data``, with the public split.

    torch-geometric's Planetoid parses the raw pickles only after :func:`resolve` has verified their checksums; for
    CiteSeer it also adds the isolated test nodes that the test index skips (zero features, in no mask).
    """
    from torch_geometric.datasets import Planetoid

    folder = resolve(name)
    return Planetoid(str(folder.parent), REGISTRY[name].folder.split("/")[-1])[0]


def load_cora():
    """Cora as a torch-geometric ``Data`` (2,708 nodes, 1,433 features, 7 classes, the public split)."""
    return load_planetoid("cora")
