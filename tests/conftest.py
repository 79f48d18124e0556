import os

# Triton kernels run under the interpreter on CPU; this must be set before triton decorates any kernel.
try:
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:  # pragma: no cover
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_build(tmp_path_factory):
    """Executed notebooks and status files of the test run go to a temporary build area, not the user's book."""
    os.environ["REPRO_BUILD"] = str(tmp_path_factory.mktemp("build"))
    yield
