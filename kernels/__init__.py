"""Compiled kernels (installed as ``npxai.kernels``): Numba CPU kernels, and later their CUDA twins.

Empty until the compiled-kernel issue lands; every operation's NumPy reference is in
``npxai.reference``.
"""
