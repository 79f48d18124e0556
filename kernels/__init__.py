"""Triton kernels, each beside its plain-torch reference (importable as ``repro.kernels``).

On a CPU the kernels run under ``TRITON_INTERPRET=1`` (how the tests check them bit-exactly against the
references); the library's CPU code paths call the references.
"""
