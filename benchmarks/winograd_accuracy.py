"""Float32 error of Winograd's F(2x2, 3x3) (npxai's kernel) and of F(4x4, 3x3) (written out here
with Lavin and Gray's matrices, points 0, +-1, +-2) beside the direct float32 convolution: max abs
error over max abs value of the float64 direct convolution, on non-negative inputs (as after a
ReLU), 3x3 kernels, padding 1. Why npxai uses F(2x2, 3x3) only: the kernel tests' float32
tolerance is 1e-5.

    python benchmarks/winograd_accuracy.py
"""

import numpy as np
from npxai.kernels.cpu import winograd

from npxai.reference import conv

B_T = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    np.float32,
)
G = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    np.float32,
)
A_T = np.array(
    [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    np.float32,
)


def f4x4(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """F(4x4, 3x3) in float32, padding 1, one sample."""
    c, h, wd = x.shape
    th, tw = -(-h // 4), -(-wd // 4)
    padded = np.zeros((c, 4 * th + 2, 4 * tw + 2), np.float32)
    padded[:, 1 : h + 1, 1 : wd + 1] = x
    tiles = np.lib.stride_tricks.sliding_window_view(padded, (6, 6), axis=(1, 2))[:, ::4, ::4]
    u = np.einsum("ai,ocij,bj->aboc", G, w, G).astype(np.float32)
    v = np.einsum("ai,ctuij,bj->abctu", B_T, tiles, B_T).astype(np.float32)
    m = np.einsum("aboc,abctu->abotu", u, v).astype(np.float32)
    y = np.einsum("ia,abotu,jb->otiuj", A_T, m, A_T).astype(np.float32)
    return y.reshape(len(w), 4 * th, 4 * tw)[:, :h, :wd]


def main() -> None:
    rng = np.random.default_rng(0)
    print("| channels | size | direct float32 | F(2x2, 3x3) | F(4x4, 3x3) |\n|---|---|---|---|---|")
    for channels, size in [(8, 12), (64, 28), (256, 14), (512, 14)]:
        x = np.maximum(rng.standard_normal((1, channels, size, size)), 0)
        w = rng.standard_normal((16, channels, 3, 3))
        args = ((1, 1), (1, 1, 1, 1), (1, 1), 1)
        exact = conv.conv2d(x, w, None, *args)
        x32, w32 = x.astype(np.float32), w.astype(np.float32)
        results = [
            conv.conv2d(x32, w32, None, *args),
            winograd.conv3x3(x32, w32, None, (1, 1, 1, 1)),
            f4x4(x32[0], w32)[None],
        ]
        scale = np.abs(exact).max()
        errors = " | ".join(f"{np.abs(r - exact).max() / scale:.1e}" for r in results)
        print(f"| {channels} | {size}x{size} | {errors} |")


if __name__ == "__main__":
    main()
