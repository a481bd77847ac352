"""Compiled kernels, installed as ``npxai.kernels``.

``cpu/`` holds the Numba CPU kernels; ``cuda/`` will hold their numba.cuda twins. Each file has the
name of, and the same public functions (same signatures) as, its NumPy reference in
``npxai/reference/``, so ``npxai.backend.implementation(family, backend)`` swaps one for the other.
"""
