"""What the graph machinery costs: one model as npxai's Sequential/Residual tree and as a Graph.

    python benchmarks/bench_graph.py [--repeats 7] [--quick]

torchvision's VGG16 and ResNet18 (random initialisation after ``torch.manual_seed(0)``, batch
norms' statistics left at their initial values), each two ways with the same weights: the tree
``npxai.canonize(npxai.from_torch(net))`` (batch norms folded into the convolutions, as the
exporter does) and the Graph ``npxai.from_onnx`` of ``torch.onnx.export(net)`` (TorchScript's
exporter). Both have the same convolutions, linear layers, ReLUs and pools, in the same order;
they differ in the containers that run them (and the Graph's nodes for the flatten). Gradient
and LRP EpsilonPlusFlat (``npxai.compat.zennit``'s), numba backend, float32, input uniform in
[0, 1) at 1x3x224x224, explaining class 0 (``--quick``: ResNet18 alone at 1x3x64x64; VGG16's
adaptive pool exports only where 7 divides its input, 224 pixels and more). The two alternate
(timing.paired_medians: a pause and an untimed call before each timed one); the table prints
the medians and the Graph's overhead over the tree. Target: at most 5%. The results agree to
float32 rounding (the last column: max abs difference over max abs value).
"""

from __future__ import annotations

import argparse
import functools
import io
import warnings

import numpy as np
import torch
import torchvision
from bench_lrp import relative_difference
from timing import match_threads, paired_medians

import npxai
from npxai.compat import zennit as nz


def both_ways(name: str, side: int) -> tuple[npxai.Module, npxai.Graph]:
    """The tree and the Graph (exported at the input's size: the exporter writes VGG16's
    adaptive pool as a fixed one for that size)."""
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)().eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, side, side),), buffer, dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}})  # fmt: skip
    return npxai.canonize(npxai.from_torch(net)), npxai.from_onnx(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed pairs per row")
    parser.add_argument("--quick", action="store_true", help="ResNet18 at 64: checks the script")
    args = parser.parse_args()
    print(match_threads() + "\n")
    side = 64 if args.quick else 224
    x = np.random.default_rng(1).random((1, 3, side, side), dtype=np.float32)
    print("| model | method | tree (s) | Graph (s) | Graph / tree - 1 | target | max rel. diff |")
    print("|---|---|---|---|---|---|---|")
    for name in ("resnet18",) if args.quick else ("vgg16", "resnet18"):
        tree, graph = both_ways(name, side)
        for method, make in (
            ("Gradient", lambda m: npxai.Gradient(m, backend="numba")),
            ("LRP EpsilonPlusFlat", lambda m: nz.lrp(m, nz.EpsilonPlusFlat(), backend="numba")),
        ):
            on_tree, on_graph = make(tree), make(graph)
            a, b = on_tree(x, 0).attribution, on_graph(x, 0).attribution
            t_tree, t_graph = paired_medians(
                functools.partial(on_tree, x, 0), functools.partial(on_graph, x, 0), args.repeats
            )
            overhead = t_graph / t_tree - 1
            verdict = "met" if overhead <= 0.05 else "missed"
            print(f"| {name} | {method} | {t_tree:.4f} | {t_graph:.4f} | {overhead:+.1%} | "
                  f"<= 5%: {verdict} | {relative_difference(b, a):.1e} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
