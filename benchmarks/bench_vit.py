"""ViT-B/16 at 1x3x224x224: forward, Gradient and AttnLRP, npxai beside PyTorch and LXT.

    pip install --no-deps lxt==2.1   # LXT's modules used here need torch only
    python benchmarks/bench_vit.py [--rounds 3] [--repeats 3] [--quick]

The model is torchvision's ``vit_b_16`` with its random initialisation after
``torch.manual_seed(0)`` (no pretrained weights are fetched), float32, the input uniform in
[0, 1) (NumPy's ``default_rng(1)``), explaining class 0. The weights and the input are written to
a temporary folder once; npxai reads the weights with its own loader (``npxai.load``, no torch)
into ``npxai.models.vit_b_16``. Rows:

- forward: npxai's ``model(x)`` (numba backend) beside torch's ``net(x)`` under ``no_grad``;
- Gradient: ``npxai.Gradient`` beside torch autograd (``net(x)[0, 0].backward()``);
- AttnLRP: ``npxai.LRP(model, AttnLRP(), output_relevance="logit")`` beside torch autograd of
  the same logit (the issue's target: at most 1.5x a PyTorch input gradient) and beside LXT 2.1's
  efficient mode (its torchvision-ViT patches with ``divide_gradient`` on query, key and value
  as in tests/test_attention_lxt.py; relevance = input x gradient).

Each (library, method) runs in a process of its own, which loads the model, warms up with one
call and times the median of ``--repeats`` calls; the processes alternate (npxai, peer, npxai,
peer, ...) for ``--rounds`` rounds, as ../shared/notes/benchmarking.md advises, and the table
shows the medians over rounds and each process's peak resident memory (``ru_maxrss``, the model
included). torch gets as many threads as Numba (timing.match_threads). ``--quick``: a ViT of two
layers at 32x32 (patch 16), one round, a check of the script.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
METHODS = ("forward", "gradient", "attnlrp")


def configuration(quick: bool) -> dict:
    """torchvision's VisionTransformer arguments of the benchmarked model."""
    if quick:
        return dict(image_size=32, patch_size=16, num_layers=2, num_heads=12, hidden_dim=768,
                    mlp_dim=3072)  # fmt: skip
    return dict(image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768,
                mlp_dim=3072)  # fmt: skip


def prepare(folder: Path, quick: bool) -> None:
    """The weights (a torch file) and the input (.npy), once."""
    import torch
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    net = VisionTransformer(**configuration(quick)).eval()
    torch.save(net.state_dict(), folder / "vit.pt")
    side = configuration(quick)["image_size"]
    x = np.random.default_rng(1).random((1, 3, side, side), dtype=np.float32)
    np.save(folder / "x.npy", x)


def lxt_patch(variant: str = "attnlrp") -> None:
    """LXT 2.1's efficient-mode patches for torchvision's ViT, its package ``__init__``s (which
    import Hugging Face models) bypassed; AttnLRP adds its ``divide_gradient`` on q, k, v."""
    import importlib.util
    import types

    import torch

    spec = importlib.util.find_spec("lxt")
    if spec is None:
        sys.exit("LXT is not installed: pip install --no-deps lxt==2.1")
    root = Path(spec.origin).parent
    for name in ("lxt.efficient", "lxt.efficient.models"):
        package = types.ModuleType(name)
        package.__path__ = [str(root / Path(*name.split(".")[1:]))]
        sys.modules.setdefault(name, package)
    from lxt.efficient import rules
    from lxt.efficient.models import vit_torch

    for target, patch in vit_torch.cp_LRP.items():
        patch(target)
    original = torch.nn.MultiheadAttention.original_forward

    def divided(self, query, key, value, *args, **kwargs):
        return original(self, rules.divide_gradient(query, 4), rules.divide_gradient(key, 4),
                        rules.divide_gradient(value, 2), *args, **kwargs)  # fmt: skip

    torch.nn.MultiheadAttention.forward = divided


def worker(folder: Path, library: str, method: str, repeats: int, quick: bool) -> dict:
    """Load, warm up, time ``repeats`` calls; the median and this process's peak memory."""
    import torch
    from timing import match_threads, median_time

    match_threads()
    x = np.load(folder / "x.npy")
    if library == "npxai":
        import npxai

        model = npxai.models.vit(**configuration(quick))
        model.load_state_dict(npxai.load(folder / "vit.pt"))
        if method == "forward":
            call = lambda: model(x, backend="numba")  # noqa: E731
        elif method == "gradient":
            call = lambda: npxai.Gradient(model, backend="numba").attribute(x, target=0)  # noqa: E731
        else:
            analyzer = npxai.LRP(model, npxai.composites.AttnLRP(), output_relevance="logit",
                                 backend="numba")  # fmt: skip
            call = lambda: analyzer.attribute(x, target=0)  # noqa: E731
    else:
        from torchvision.models.vision_transformer import VisionTransformer

        if library == "lxt":
            lxt_patch()
        net = VisionTransformer(**configuration(quick)).eval()
        net.load_state_dict(torch.load(folder / "vit.pt"))
        xt = torch.tensor(x)

        def call():
            if method == "forward":
                with torch.no_grad():
                    return net(xt)
            t = xt.clone().requires_grad_()
            net(t)[0, 0].backward()
            return t * t.grad if library == "lxt" else t.grad

    seconds = median_time(call, repeats)  # one warm-up call, then the median of repeats
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak}


def run(folder: Path, library: str, method: str, repeats: int, quick: bool) -> dict:
    command = [sys.executable, __file__, "--worker", library, method, str(folder),
               "--repeats", str(repeats)] + (["--quick"] if quick else [])  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=HERE)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating process rounds")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per process")
    parser.add_argument("--quick", action="store_true", help="a 2-layer ViT at 32x32")
    parser.add_argument("--worker", nargs=3, metavar=("LIBRARY", "METHOD", "FOLDER"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.worker:
        library, method, folder = args.worker
        print(json.dumps(worker(Path(folder), library, method, args.repeats, args.quick)))
        return
    sys.path.insert(0, str(HERE))
    from timing import match_threads

    print(match_threads() + "\n")
    rounds = 1 if args.quick else args.rounds
    pairs = [("forward", "torch"), ("gradient", "torch"), ("attnlrp", "torch"), ("attnlrp", "lxt")]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        prepare(folder, args.quick)
        results: dict = {}
        for _ in range(rounds):
            for method, peer in pairs:
                for library in ("npxai", peer):
                    key = (library, method if library != "torch" or method != "attnlrp"
                           else "gradient")  # fmt: skip
                    results.setdefault(key, []).append(run(folder, library, key[1], args.repeats,
                                                           args.quick))  # fmt: skip
    config = configuration(args.quick)
    print(f"ViT {config}, 1x3x{config['image_size']}x{config['image_size']}, float32, "
          f"{rounds} rounds x {args.repeats} calls; medians over rounds\n")  # fmt: skip
    print("| row | npxai (s) | peer (s) | npxai / peer | target | peak RSS npxai / peer (MB) |")
    print("|---|---|---|---|---|---|")
    targets = {("gradient", "torch"): 1.3, ("attnlrp", "torch"): 1.5}
    names = {"torch": "PyTorch", "lxt": "LXT 2.1"}
    for method, peer in pairs:
        ours = results[("npxai", method)]
        theirs = results[(peer, "gradient" if (peer, method) == ("torch", "attnlrp") else method)]
        a = statistics.median(r["seconds"] for r in ours)
        b = statistics.median(r["seconds"] for r in theirs)
        limit = targets.get((method, peer))
        verdict = "-" if limit is None else f"<= {limit}: {'met' if a / b <= limit else 'missed'}"
        peer_name = names[peer] + (" gradient" if (peer, method) == ("torch", "attnlrp") else "")
        print(f"| {method} vs {peer_name} | {a:.3f} | {b:.3f} | {a / b:.2f} | {verdict} | "
              f"{max(r['peak_mb'] for r in ours):.0f} / {max(r['peak_mb'] for r in theirs):.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
