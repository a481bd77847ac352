"""Small calls on the calling thread: each parallel kernel's serial twin.

A ``parallel=True`` kernel hands its loop to Numba's TBB workers at every call, which costs a few
microseconds even when the workers are awake (ReLU over 4,096 elements: 5 us, where the same loop
compiled without ``parallel`` takes 0.4-0.6 us) and more when they have gone to sleep between two
of a small model's layers. So a call whose serial run is estimated under :data:`SERIAL_BELOW_NS` (its
units of work times their measured cost) runs the kernel's serial twin, the same function
compiled without ``parallel`` (``prange`` is then ``range``), made at its first use and compiled
only when a small call needs it: a small model compiles only serial kernels, which also compile
faster (its cold start, issue 23). ``python benchmarks/bench_serial.py`` measures the costs and
the effect on whole calls.

Numba's cache names a compiled function by its name and line, so a twin compiled from the same
function object would overwrite the parallel kernel's cached entries (and load them in its
place): the twin is a copy of the function under the name ``<name>_serial``.
"""

import types

from numba import njit

#: A call whose serial run is estimated to take less than this (nanoseconds) runs serially: about
#: where the serial twin and the parallel launch broke even, measured.
SERIAL_BELOW_NS = 10_000

# Serial nanoseconds per unit of a call's work, float32, by kind of loop (``python
# benchmarks/bench_serial.py`` measures each kernel's); too high a cost only keeps a call parallel.
#: An element of an element-wise pass without exp or tanh (ReLU, batch norm, the LRP ratio:
#: 0.07-0.24 ns), of a depthwise convolution's taps (0.07-0.30), a copy between layouts.
STREAM = 0.2
#: An element of a pass with exp or tanh (SiLU, sigmoid, GELU, softmax: 3.3-6.2 ns), or an
#: unmeasured row-wise one (layer norm).
EXP = 5.0
#: An element of im2col's column matrix, or of col2im's (0.11-0.76 ns).
COPY = 0.5
#: A tap of a pooling window or of a grouped convolution's direct loop (the max pool's forward
#: 0.63-1.8 ns, its input gradient 2.7-4.1, the average pool's 1.2-1.5).
TAP = 2.0

_twins: dict = {}


def sized(kernel, units: int, ns_per_unit: float):
    """``kernel`` (a ``parallel=True`` dispatcher), or its serial twin for a call of ``units``
    units of work at ``ns_per_unit`` each (:data:`STREAM`, :data:`EXP`, :data:`COPY`,
    :data:`TAP`) estimated under :data:`SERIAL_BELOW_NS`."""
    if units * ns_per_unit >= SERIAL_BELOW_NS:
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
