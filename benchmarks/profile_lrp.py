"""Where an LRP explanation's time goes: the compiled layer kernels against the rest.

    python benchmarks/profile_lrp.py [--preset EpsilonPlus] [--batch 1]

Profiles one call (after a warm-up call) of ``npxai.compat.zennit``'s preset on torchvision's
VGG16 (random weights, float32, numba backend) with cProfile and sums the time spent inside
npxai's compiled kernels (``npxai/kernels/``: convolutions, linear maps, pools) against the
rest (the rules' modifiers, the stabiliser and division, the relevance sums: NumPy element-wise
work), to show what a fused element-wise LRP kernel could save at most.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

import numpy as np
import torch
import torchvision

import npxai
from npxai.compat import zennit as nz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="EpsilonPlus")
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = npxai.from_torch(torchvision.models.vgg16().eval())
    x = np.random.default_rng(1).random((args.batch, 3, 224, 224), dtype=np.float32)
    preset = getattr(nz, args.preset)
    analyzer = nz.lrp(model, preset(0.0, 1.0) if args.preset == "EpsilonGammaBox" else preset())
    analyzer(x)
    profile = cProfile.Profile()
    profile.runcall(analyzer, x)
    stats = pstats.Stats(profile).stats
    total = sum(tottime for _, _, tottime, _, _ in stats.values())
    kernels = sum(
        tottime for (path, _, _), (_, _, tottime, _, _) in stats.items() if "/kernels/" in path
    )
    print(f"{args.preset}, VGG16, batch {args.batch}: {total:.3f} s profiled")
    print(f"  compiled layer kernels: {kernels:.3f} s ({kernels / total:.0%})")
    print(f"  everything else:        {total - kernels:.3f} s ({1 - kernels / total:.0%})")


if __name__ == "__main__":
    main()
