import os

# Triton kernels run under the interpreter on CPU; this must be set before triton decorates any kernel. On a GPU host
# REPRO_KERNEL_DEVICE=cpu asks for the interpreter too (tests/gpu/check.sh keeps one such run).
try:
    import torch

    if not torch.cuda.is_available() or os.environ.get("REPRO_KERNEL_DEVICE") == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:  # pragma: no cover
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

KERNEL_DEVICES = ("cpu", "cuda")


def pick_kernel_device() -> str:
    """cuda natively when torch sees a GPU and TRITON_INTERPRET is not "1", else cpu under the interpreter;
    REPRO_KERNEL_DEVICE=cpu|cuda overrides (cuda with TRITON_INTERPRET=1 interprets on GPU tensors)."""
    forced = os.environ.get("REPRO_KERNEL_DEVICE", "").strip().lower()
    if forced:
        if forced not in KERNEL_DEVICES:
            raise pytest.UsageError(f"REPRO_KERNEL_DEVICE must be one of {KERNEL_DEVICES}, got {forced!r}")
        if forced == "cuda" and not torch.cuda.is_available():
            raise pytest.UsageError("REPRO_KERNEL_DEVICE=cuda but torch sees no GPU")
        return forced
    if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        return "cuda"
    return "cpu"


@pytest.fixture(scope="session")
def kernel_device() -> torch.device:
    """The device the Triton kernel tests create their tensors on (see ``pick_kernel_device``)."""
    return torch.device(pick_kernel_device())


@pytest.fixture(scope="session", autouse=True)
def isolated_build(tmp_path_factory):
    """Executed notebooks and status files of the test run go to a temporary build area, not the user's book."""
    os.environ["REPRO_BUILD"] = str(tmp_path_factory.mktemp("build"))
    yield
