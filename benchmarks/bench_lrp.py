"""npxai's LRP presets (numba backend) beside Zennit's on VGG16, CPU, float32.

    python benchmarks/bench_lrp.py [--repeats 3] [--quick]

One process, the same weights (torchvision's VGG16, random initialisation, converted with
npxai.from_torch), the same inputs (uniform in [0, 1)) and the same one-hot output relevance at
torch's arg-max; npxai runs ``npxai.compat.zennit``'s twin of each Zennit preset, so both compute
the same thing. torch gets as many threads as Numba. Times are medians of ``paired_medians``
(timing.py): the two libraries alternate, each timed call after a pause and an untimed call. The
gradient row (npxai.gradient beside torch autograd) is the yardstick: every preset needs the
forward pass and at least one transposed convolution per layer, as the gradient does.

The last column compares the float32 relevances (max abs difference over max abs value); as for
the gradient (bench_cpu.py), ReLU and max-pool decisions flip on rounding in a network this deep,
while in float64 npxai equals Zennit to 1e-10 (tests/test_lrp_zennit.py).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torchvision
from timing import match_threads, paired_medians
from zennit import composites as Z
from zennit.attribution import Gradient

import npxai
from npxai.compat import zennit as nz

#: (name, Zennit's composite, npxai's twin); inputs lie in [0, 1], the z-box bounds.
PRESETS = [
    ("EpsilonPlus", lambda: Z.EpsilonPlus(), lambda: nz.EpsilonPlus()),
    ("EpsilonPlusFlat", lambda: Z.EpsilonPlusFlat(), lambda: nz.EpsilonPlusFlat()),
    ("EpsilonAlpha2Beta1", lambda: Z.EpsilonAlpha2Beta1(), lambda: nz.EpsilonAlpha2Beta1()),
    ("EpsilonAlpha2Beta1Flat", lambda: Z.EpsilonAlpha2Beta1Flat(),
     lambda: nz.EpsilonAlpha2Beta1Flat()),
    ("EpsilonGammaBox", lambda: Z.EpsilonGammaBox(0.0, 1.0), lambda: nz.EpsilonGammaBox(0.0, 1.0)),
    ("ExcitationBackprop", lambda: Z.ExcitationBackprop(), lambda: nz.ExcitationBackprop()),
]  # fmt: skip


def relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="batch 1 only")
    args = parser.parse_args()
    print(match_threads() + "\n")
    torch.manual_seed(0)
    net = torchvision.models.vgg16().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    model = npxai.from_torch(net)
    print("| analyzer | input | npxai (s) | Zennit / torch (s) | npxai / theirs | max rel. diff |")
    print("|---|---|---|---|---|---|")
    for batch in (1,) if args.quick else (1, 8):
        x = np.random.default_rng(1).random((batch, 3, 224, 224), dtype=np.float32)
        run_batch(net, model, x, args.repeats)


def run_batch(net: torch.nn.Module, model: npxai.Module, x: np.ndarray, repeats: int) -> None:
    """Print the gradient row and one row per preset for the input ``x``."""
    xt = torch.tensor(x)
    with torch.no_grad():
        target = net(xt).argmax(1).numpy()
    one_hot = torch.eye(1000)[target]
    shape = "x".join(map(str, x.shape))

    def torch_gradient():
        xg = xt.clone().requires_grad_(True)
        (net(xg) * one_hot).sum().backward()
        return xg.grad.numpy()

    def row(name, ours, theirs):
        t_ours, t_theirs = paired_medians(ours, theirs, repeats)
        diff = relative_difference(ours(), theirs())
        print(f"| {name} | {shape} | {t_ours:.3f} | {t_theirs:.3f} | {t_ours / t_theirs:.2f} | "
              f"{diff:.1e} |", flush=True)  # fmt: skip

    row("gradient", lambda: npxai.gradient(model, x, target), torch_gradient)
    for name, theirs, ours in PRESETS:
        analyzer = nz.lrp(model, ours())
        with Gradient(model=net, composite=theirs()) as attributor:
            row(
                name,
                lambda analyzer=analyzer: analyzer(x, target).attribution,
                lambda attributor=attributor: attributor(xt.clone().requires_grad_(True), one_hot)[
                    1
                ].numpy(),
            )


if __name__ == "__main__":
    main()
