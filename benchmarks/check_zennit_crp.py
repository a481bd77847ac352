"""npxai's CRP beside zennit-crp's ``CondAttribution``, in float64.

    pip install --no-deps --target /tmp/zcrp_site zennit-crp==0.6.0
    PYTHONPATH=/tmp/zcrp_site python benchmarks/check_zennit_crp.py

zennit-crp 0.6.0 (the newest on PyPI) declares ``zennit<=0.4.6`` while npxai's test extra pins
``zennit==0.5.1``, so it cannot join the test extra; installed without its dependencies beside
Zennit 0.5.1 it imports and runs, and this script compares the two. Network: a small CNN with a
batch norm (random statistics), converted with ``npxai.from_torch``. For each Zennit preset (with
``SequentialMergeBatchNorm``; npxai: ``npxai.compat.zennit``'s twin and its ``canonize``), each
conditioned layer and both npxai backends, it prints

- whether npxai's ``TopNFeatures(n)`` picks the channels zennit-crp's ranking picks
  (``argsort`` of ``ChannelConcept.attribute(relevance, abs_norm=True)``, descending: the signed
  sum over positions);
- the largest difference of the channels' relevance shares (zennit-crp divides by
  ``sum |R_c| + 1e-10``, npxai by ``sum |R_c|``);
- the max relative difference of the concept-conditional input relevances
  (``max |npxai - zennit-crp| / max |zennit-crp|``), zennit-crp's taken from ``data.grad`` (its
  ``heatmap_modifier`` would sum over the input channels) with its defaults: the logit as output
  relevance (npxai's ``output_relevance="logit"``) and ``exclude_parallel=True``.

Exits with status 1 if zennit-crp is not importable or a difference exceeds 1e-10.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

import npxai
from npxai.compat import zennit as nz

try:
    from crp.attribution import CondAttribution
    from crp.concepts import ChannelConcept
except ImportError as error:
    sys.exit(f"zennit-crp is not importable ({error}); install it as this script's docstring says")

from zennit import composites as Z
from zennit.canonizers import SequentialMergeBatchNorm

#: (name, Zennit's preset given canonizers, npxai.compat.zennit's twin)
PRESETS = [
    ("EpsilonPlusFlat", lambda c: Z.EpsilonPlusFlat(canonizers=c), nz.EpsilonPlusFlat),
    ("EpsilonAlpha2Beta1", lambda c: Z.EpsilonAlpha2Beta1(canonizers=c), nz.EpsilonAlpha2Beta1),
    (
        "EpsilonGammaBox",
        lambda c: Z.EpsilonGammaBox(-3.0, 3.0, canonizers=c),
        lambda: nz.EpsilonGammaBox(-3.0, 3.0),
    ),
]
#: (layer key, TopN's n): the first convolution, the second one, the hidden dense layer
LAYERS = [("0", 4), ("4", 3), ("8", 5)]
TOLERANCE = 1e-10


class InputRelevance(CondAttribution):
    """zennit-crp's attribution with the full input relevance, not its sum over channels."""

    def heatmap_modifier(self, data, on_device=None):
        return data.grad.detach().clone()


def network() -> torch.nn.Sequential:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 6, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(6 * 2 * 2, 10),
        torch.nn.ReLU(), torch.nn.Linear(10, 4),
    ).double()  # fmt: skip
    norm = model[1]
    norm.running_mean.uniform_(-0.5, 0.5)
    norm.running_var.uniform_(0.5, 2.0)
    norm.weight.data.uniform_(0.5, 1.5)
    norm.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def main() -> int:
    torch_model = network()
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8))
    targets = torch_model(torch.tensor(x)).argmax(1).tolist()
    model = npxai.from_torch(torch_model)
    worst = 0.0
    failed = False
    print(f"{'preset':<20} {'layer':>5} {'backend':>7} {'same top-n':>10} {'share diff':>10} "
          f"{'max rel. diff':>13}")  # fmt: skip
    for name, zennit_preset, npxai_preset in PRESETS:
        reference = {}
        for key, n in LAYERS:
            attribution = InputRelevance(torch_model)
            for backend in ("numpy", "numba"):
                analyzer = npxai.LRP(
                    nz.merge_batch_norms(model), npxai_preset(), "logit", backend=backend
                )
                ours = npxai.CRP(analyzer, key, npxai.TopNFeatures(n))(x, target=targets)
                if key not in reference:  # zennit-crp: the ranking, then one map per concept
                    data = torch.tensor(x, requires_grad=True)
                    composite = zennit_preset([SequentialMergeBatchNorm()])
                    plain = attribution(data, [{"y": [t]} for t in targets], composite, [key])
                    share = ChannelConcept().attribute(plain.relevances[key], abs_norm=True)
                    top = torch.argsort(share, dim=1, descending=True)[:, :n].numpy()
                    maps = []
                    for sample, target in enumerate(targets):
                        data = torch.tensor(x[sample : sample + 1], requires_grad=True)
                        conditions = [{"y": [target], key: [int(c)]} for c in top[sample]]
                        composite = zennit_preset([SequentialMergeBatchNorm()])
                        maps.append(attribution(data, conditions, composite).heatmap.numpy())
                    reference[key] = top, share.numpy(), np.stack(maps)
                top, share, maps = reference[key]
                same = np.array_equal(ours.extras["channels"], top)
                chosen = np.take_along_axis(share, ours.extras["channels"], axis=1)
                share_diff = float(np.abs(ours.extras["concept_share"] - chosen).max())
                rel = float(np.abs(ours.attribution - maps).max() / np.abs(maps).max())
                worst = max(worst, rel)
                failed |= not same or rel > TOLERANCE
                print(f"{name:<20} {key:>5} {backend:>7} {str(same):>10} {share_diff:>10.1e} "
                      f"{rel:>13.1e}")  # fmt: skip
    print(f"largest relative difference: {worst:.1e} (tolerance {TOLERANCE:.0e})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
