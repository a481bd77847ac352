"""Host and device arrays for ``backend="cuda"``: what crosses between them, and when.

- A model run on the cuda backend sends a host (NumPy) input to the device once; every layer's
  output, the trace's records and the backward signal stay there.
- Parameters go to the device once per layer and dtype and stay cached with the layer
  (:meth:`npxai.Module.parameter_as`); an LRP rule's modified parameters (``W+``,
  ``W + gamma W+``, ...) are made on the host once and cached the same way. Assigning a parameter
  or ``load_state_dict`` empties the cache (changing a parameter array in place does not).
- Results come back as NumPy unless the input was a device array: anything with
  ``__cuda_array_interface__`` (numba device arrays, CuPy arrays), or a simulator array.
- The small crossings: the logits go to the host to choose the targets, the one-hot seed goes
  back; Grad-CAM reads its feature layer's activations and gradient on the host; SmoothGrad and
  IntegratedGradients make their noisy copies and path points on the host (NumPy's seeded
  generator, so every backend draws the same noise) and send them batch by batch.

:func:`add`, :func:`multiply` and :func:`zeros_like` are the operators of the layer graph's glue
(residual sums): NumPy's on host arrays, the kernels of ``kernels/cuda/arithmetic.py`` on device
arrays. ``numba.cuda`` is imported only when a device array or the cuda backend is met.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_device(a: Any) -> bool:
    """Whether ``a`` is a device array (CUDA array interface, or the simulator's array)."""
    return hasattr(a, "__cuda_array_interface__") or hasattr(a, "copy_to_host")


def _kernels():
    from .kernels.cuda import arithmetic

    return arithmetic


def to_device(a: Any) -> Any:
    """``a`` as a numba device array: a host array is copied over, a device array is wrapped."""
    from numba import cuda

    if hasattr(a, "copy_to_host"):
        return a
    if hasattr(a, "__cuda_array_interface__"):
        return cuda.as_cuda_array(a)
    return cuda.to_device(np.ascontiguousarray(a))


def to_host(a: Any) -> Any:
    """``a`` as a NumPy array (a tuple element by element); host arrays are returned as they are."""
    if isinstance(a, tuple):
        return tuple(to_host(v) for v in a)
    if hasattr(a, "copy_to_host"):
        return a.copy_to_host()
    if hasattr(a, "__cuda_array_interface__"):
        return to_device(a).copy_to_host()
    return a


def deliver(a: Any, on_device: bool) -> Any:
    """A result in the caller's kind: on the device if the input was, else NumPy."""
    if a is None:
        return None
    return to_device(a) if on_device else to_host(a)


def add(a: Any, b: Any) -> Any:
    """``a + b``."""
    return _kernels().add(a, b) if is_device(a) else a + b


def multiply(a: Any, b: Any) -> Any:
    """``a * b``."""
    return _kernels().multiply(a, b) if is_device(a) else a * b


def zeros_like(a: Any) -> Any:
    """Zeros in ``a``'s shape and dtype, where ``a`` lives."""
    return _kernels().zeros(a.shape, a.dtype) if is_device(a) else np.zeros_like(a)


def count_nonfinite(a: Any) -> int:
    """How many entries of the device array ``a`` are NaN or infinite."""
    return _kernels().count_nonfinite(a)
