"""Numba CPU kernels: ``@njit(cache=True)``, ``prange`` over independent planes or rows, float32 and
float64, any batch size. Dense products go to BLAS through NumPy's ``matmul``."""
