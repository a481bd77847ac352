"""AttnLRP and CP-LRP against LXT 2.1 itself (the README's slow command installs it with
``pip install --no-deps lxt==2.1``: its declared dependencies, transformers, bitsandbytes and
open_clip among them, are not needed by the modules used here).

LXT's package ``__init__`` files import every Hugging Face model it patches; this test loads its
``lxt.efficient`` modules without them (empty package stand-ins in ``sys.modules``), then applies
LXT's own patches: its ``cp_LRP`` map for torchvision's ViT (GELU's identity rule, LayerNorm's
detached std, ``query`` and ``key`` detached), and for AttnLRP the same map with its
``divide_gradient`` on query (4), key (4) and value (2), as its ``wrap_attention_forward`` does for
Hugging Face attention. LXT patches torch's classes; the originals are put back afterwards.
"""

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import relative_error
from test_attention import torch_vit

import npxai
from npxai.composites import CPLRP, AttnLRP

pytestmark = pytest.mark.slow


def lxt_modules():
    """LXT's ``patches``, ``rules`` and torchvision-ViT map, without its package ``__init__``s."""
    spec = importlib.util.find_spec("lxt")
    assert spec is not None, "LXT is not installed: pip install --no-deps lxt==2.1"
    root = Path(spec.origin).parent
    for name in ("lxt.efficient", "lxt.efficient.models"):
        package = types.ModuleType(name)
        package.__path__ = [str(root / Path(*name.split(".")[1:]))]
        sys.modules.setdefault(name, package)
    from lxt.efficient import patches, rules
    from lxt.efficient.models import vit_torch

    return patches, rules, vit_torch


@pytest.mark.parametrize("variant", ["attnlrp", "cp"])
def test_attnlrp_and_cplrp_equal_lxt(variant):
    patches, rules, vit_torch = lxt_modules()
    classes = (torch.nn.GELU, torch.nn.LayerNorm, torch.nn.MultiheadAttention)
    saved = {cls: dict(vars(cls)) for cls in classes}
    theirs = torch_vit(seed=7)
    ours = npxai.from_torch(theirs)
    x = np.random.default_rng(8).standard_normal((2, 3, 8, 8))
    try:
        for target, patch in vit_torch.cp_LRP.items():
            assert patch(target)
        if variant == "attnlrp":
            original = torch.nn.MultiheadAttention.original_forward

            def divided(self, query, key, value, *args, **kwargs):
                query = rules.divide_gradient(query, 4)
                key = rules.divide_gradient(key, 4)
                value = rules.divide_gradient(value, 2)
                return original(self, query, key, value, *args, **kwargs)

            torch.nn.MultiheadAttention.forward = divided
        xt = torch.tensor(x, requires_grad=True)
        theirs(xt)[:, 3].sum().backward()
        expected = (xt * xt.grad).detach().numpy()
    finally:
        for cls, attributes in saved.items():
            for name in set(vars(cls)) - set(attributes):
                delattr(cls, name)
            for name in ("forward",):
                setattr(cls, name, attributes[name])
    composite = (AttnLRP if variant == "attnlrp" else CPLRP)(1e-14)
    for backend in ("numpy", "numba"):
        relevance = npxai.LRP(ours, composite, output_relevance="logit", backend=backend)
        assert relative_error(relevance.attribute(x, target=3), expected) < 1e-7
