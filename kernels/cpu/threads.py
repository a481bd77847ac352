"""Small calls on the calling thread: each parallel kernel's serial twin.

A ``parallel=True`` kernel hands its loop to Numba's TBB workers at every call, which costs a few
microseconds even when the workers are awake (ReLU over 100 elements: 4-5 us, where the same loop
compiled without ``parallel`` takes 0.5 us) and more when they have gone to sleep between two of a
small model's layers: the small CNN's Gradient at batch 1 took a median 600-650 us a call on 2
threads and 450-480 us with ``numba.set_num_threads(1)``. So a call that touches fewer than
:data:`SERIAL_BELOW` elements runs the kernel's serial twin, the same function compiled without
``parallel`` (``prange`` is then ``range``), made at its first use and compiled only when a small
call needs it: a small model compiles only serial kernels, which also compile faster (its cold
start, issue 23). Measured by ``python benchmarks/bench_threads.py --serial`` (see there).

Numba's cache names a compiled function by its name and line, so a twin compiled from the same
function object would overwrite the parallel kernel's cached entries (and load them in its
place): the twin is a copy of the function under the name ``<name>_serial``.
"""

import types

from numba import njit

#: Calls that touch fewer elements than this (the kernel's output, or the larger of its
#: arrays) run serially. At 2^15 float32 elements ReLU took 2-3 us serially, 5-7 on 2 threads;
#: at 2^17, 10 us against 8.
SERIAL_BELOW = 2**15

_twins: dict = {}


def sized(kernel, size: int):
    """``kernel`` (a ``parallel=True`` dispatcher), or its serial twin for a call that touches
    fewer than :data:`SERIAL_BELOW` elements."""
    if size >= SERIAL_BELOW:
        return kernel
    twin = _twins.get(kernel)
    if twin is None:
        twin = _twins[kernel] = serial_twin(kernel)
    return twin


def serial_twin(kernel):
    """``kernel``'s function compiled without ``parallel``, cached under a name of its own (the
    kernel itself where ``NUMBA_DISABLE_JIT`` leaves plain functions)."""
    func = getattr(kernel, "py_func", None)
    if func is None:
        return kernel
    twin = types.FunctionType(
        func.__code__, func.__globals__, func.__name__ + "_serial", func.__defaults__,
        func.__closure__,
    )  # fmt: skip
    twin.__qualname__ = func.__qualname__ + "_serial"
    return njit(cache=True)(twin)
