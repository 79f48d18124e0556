"""repro: the thin library under the ten-paper reproducibility handbook.

Chapters import it; the logic lives here where it is tested, and the notebooks narrate, run, plot and tabulate.
"""
from repro.claims import Claim, record_claims
from repro.params import ParameterError
from repro.session import chapter_setup

__version__ = "0.1.0"
__all__ = ["Claim", "ParameterError", "chapter_setup", "record_claims", "__version__"]
