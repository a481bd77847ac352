"""Where VGG16's convolution time goes (numba backend, batch 1, float32): per layer, the whole
compiled convolution beside its BLAS GEMM and its im2col copy, timed alone.

    python benchmarks/profile_conv.py
"""

import numpy as np
from npxai.kernels.cpu import conv as kernels
from timing import median_time

import npxai


def time_layer(record: npxai.Record) -> np.ndarray:
    """Seconds of the whole convolution, its GEMM alone and its im2col alone."""
    layer, xi = record.layer, record.input
    oh, ow = record.output.shape[-2:]
    w = layer.weight.reshape(layer.out_channels, -1)
    cols = np.empty((w.shape[1], oh * ow), np.float32)
    y = np.empty((w.shape[0], oh * ow), np.float32)
    top, _, left, _ = layer.explicit_padding()
    geometry = (*layer.kernel_size, *layer.stride, top, left, *layer.dilation, oh, ow)
    return np.array(
        [
            median_time(lambda: layer.forward(xi, "numba"), 7),
            median_time(lambda: np.matmul(w, cols, out=y), 7),
            median_time(lambda: kernels._im2col(xi, cols, *geometry), 7),
        ]
    )


def main() -> None:
    npxai.manual_seed(0)
    model = npxai.models.vgg16()
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    totals = np.zeros(3)
    print("| layer | convolution (ms) | GEMM (ms) | im2col (ms) |")
    print("|---|---|---|---|")
    for key, record in model.trace(x).items():
        layer = record.layer
        if not isinstance(layer, npxai.layers.Conv2d):
            continue
        times = time_layer(record)
        totals += times
        print(f"| {key} | {times[0] * 1e3:.1f} | {times[1] * 1e3:.1f} | {times[2] * 1e3:.1f} |")
    print(f"| all | {totals[0] * 1e3:.0f} | {totals[1] * 1e3:.0f} | {totals[2] * 1e3:.0f} |")


if __name__ == "__main__":
    main()
