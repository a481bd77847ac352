"""Scratch arrays that the kernels reuse from call to call."""

import threading

import numpy as np

_buffers = threading.local()


def workspace(name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Scratch array ``name`` from a per-thread buffer that only grows: a fresh allocation of a
    large intermediate (im2col's column matrix, Winograd's transformed tiles) at every call would
    pay its page faults each time (on this project's virtual machines, as costly as filling it).
    The buffer is held until the thread ends; two names never share memory."""
    size = int(np.prod(shape))
    key = (name, np.dtype(dtype).str)
    buffers = _buffers.__dict__
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = np.empty(size, dtype)
        buffers[key] = buffer
    return buffer[:size].reshape(shape)
