"""Small kernel calls on the calling thread (``kernels/cpu/threads.py``): what each kernel's
serial twin costs per unit of work (the costs ``threads.py`` states), beside its parallel build,
and what the twins save on whole calls.

    python benchmarks/bench_serial.py [--calls 300]

1. Kernels of every kind ``threads.py`` names (element-wise with and without exp, batch norm, the
   LRP ratio, im2col and col2im, the pools, a depthwise convolution) on 16 planes of 16x16,
   32x32 and 64x64, float32: the serial twin's nanoseconds per unit of work and both builds'
   microseconds a call (back-to-back calls: the threads stay awake, a launch's least cost).
2. Gradient of the small CNN (npxai.models.lenet, 1x1x28x28) and of ResNet18 (npxai's, random
   weights) at 1x3x224x224, each in a process of its own, with ``SERIAL_BELOW_NS`` as shipped
   and 0 (every call parallel): median and 90th percentile of ``--calls`` calls (small CNN) or of
   20 (ResNet18).
"""

import argparse
import json
import os
import subprocess
import sys

WORKER = r"""
import json, os, sys, time
import numpy as np
from npxai.kernels.cpu import threads
import npxai
threads.SERIAL_BELOW_NS = int(os.environ["SERIAL_BELOW_NS"])
name, calls = sys.argv[1], int(sys.argv[2])
npxai.manual_seed(0)
if name == "small CNN":
    model = npxai.models.lenet(num_classes=10, in_channels=1, input_size=28)
    x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
else:
    model = npxai.models.resnet18()
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
for _ in range(5):
    npxai.gradient(model, x)
times = []
for _ in range(calls):
    start = time.perf_counter()
    npxai.gradient(model, x)
    times.append(time.perf_counter() - start)
print(json.dumps([float(np.median(times)), float(np.percentile(times, 90))]))
"""


def micro() -> None:
    import time

    import numpy as np
    from npxai.kernels.cpu import activation, conv, lrp, norm, pool
    from npxai.kernels.cpu.threads import serial_twin

    def per_call(f, n=500):
        for _ in range(20):
            f()
        start = time.perf_counter()
        for _ in range(n):
            f()
        return (time.perf_counter() - start) / n * 1e9

    print("| kernel | planes | units of work | serial twin (ns a unit) | serial twin (us) "
          "| parallel (us) |\n|---|---|---|---|---|---|")  # fmt: skip
    rng = np.random.default_rng(0)
    for side in (16, 32, 64):
        x = rng.standard_normal((16, side, side), dtype=np.float32)
        flat, out, rows = x.reshape(-1), np.empty(x.size, np.float32), x.reshape(-1, 64)
        cols = np.empty((16 * 9, side * side), np.float32)
        half = (side - 1) // 2 + 1
        y3, y2 = (
            np.empty((16, half, half), np.float32),
            np.empty((16, side // 2, side // 2), np.float32),
        )
        g3, zero = rng.standard_normal(y3.shape, dtype=np.float32), np.zeros(16, np.float32)
        w = rng.standard_normal((16, 1, 3, 3), dtype=np.float32)
        same = (3, 3, 1, 1, 1, 1, 1, 1, side, side)
        cases = [  # name, kernel, arguments, units of work
            ("ReLU", activation._relu_vjp, (flat, flat, out), x.size),
            ("SiLU", activation._silu, (flat, out), x.size),
            ("softmax, rows of 64", activation._softmax_rows, (rows, rows.copy()), x.size),
            ("batch norm", norm._batch_norm, (x.reshape(1, 16, -1), zero, zero + 1, zero, x.reshape(1, 16, -1).copy()), x.size),
            ("LRP ratio", lrp._ratio, (flat, flat, np.float32(1e-6), 0, out), x.size),
            ("im2col 3x3", conv._im2col, (x[None], cols, *same), cols.size),
            ("col2im 3x3", conv._col2im, (cols, x[None].copy(), *same), cols.size),
            ("max pool 3x3/2", pool._max_pool, (x, y3, 3, 3, 2, 2, 1, 1, 1, 1), y3.size * 9),
            ("its input gradient", pool._max_pool_vjp,
             (g3, x, np.zeros((16, side * side), np.float32), 3, 3, 2, 2, 1, 1, 1, 1), y3.size * 9),
            ("max pool 2x2", pool._max_pool_2x2, (x, y2, np.empty(y2.shape, np.int64), True), y2.size * 4),
            ("avg pool 3x3/2", pool._avg_pool, (x, y3, 3, 3, 2, 2, 1, 1, True, 0), y3.size * 9),
            ("depthwise 3x3", conv._depthwise,
             (x[None], w, zero, x[None].copy(), 1, 1, 1, 1, 1, 1, False, 16), x.size * 9),
        ]  # fmt: skip
        for name, kernel, args, units in cases:
            twin = serial_twin(kernel)
            serial = per_call(lambda k=twin, a=args: k(*a))
            parallel = per_call(lambda k=kernel, a=args: k(*a))
            print(f"| {name} | 16x{side}x{side} | {units:,} | {serial / units:.3f} | "
                  f"{serial / 1e3:.2f} | {parallel / 1e3:.2f} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    calls = parser.parse_args().calls
    micro()
    from npxai.kernels.cpu.threads import SERIAL_BELOW_NS

    print("\n| model | SERIAL_BELOW_NS | median (ms) | 90th percentile (ms) |\n|---|---|---|---|")
    for name, n in (("small CNN", calls), ("ResNet18", 20)):
        for serial_below in (SERIAL_BELOW_NS, 0):
            env = dict(os.environ, SERIAL_BELOW_NS=str(serial_below))
            out = subprocess.run([sys.executable, "-c", WORKER, name, str(n)], env=env,
                                 capture_output=True, text=True, check=True)  # fmt: skip
            median, p90 = json.loads(out.stdout)
            print(f"| {name} | {serial_below} | {median * 1e3:.3f} | {p90 * 1e3:.3f} |", flush=True)


if __name__ == "__main__":
    main()
