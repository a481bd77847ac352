"""The kinds of layer that LRP tells apart: the one home of layer groups.

Every rule says which kinds it takes (``Rule.layers``, :mod:`npxai.lrp.rules`), the composites'
defaults are given per kind (:data:`npxai.lrp.composites.DEFAULTS`), and ``npxai.compat``
builds its peers' layer maps from these tuples. A new layer joins LRP by joining a kind here.
"""

from __future__ import annotations

from .. import layers as L
from ..attention import MultiheadAttention

#: ``z = W x + b`` with parameters a rule may modify (``W+``, ``W + gamma W+``, ...).
PARAMETRIC = (L.Linear, L.Conv2d)
#: Average pooling: a fixed linear map of the input (z-type rules without parameters).
AVERAGE_POOLS = (L.AvgPool2d, L.AdaptiveAvgPool2d)
#: Means over whole axes (``torch.mean``): a fixed linear map, as average pooling.
MEANS = (L.Mean,)
#: Padding and upsampling: fixed linear maps that move, copy or interpolate the input's values
#: (``ConstantPad2d`` with a nonzero value is affine: its border absorbs relevance, as a bias).
RESAMPLING = (L.ZeroPad2d, L.ConstantPad2d, L.Upsample)
#: Max pooling: a piecewise linear map (z-type rules run through its gradient).
MAX_POOLS = (L.MaxPool2d,)
#: Batch norm left unfolded: a fixed affine map ``s x + t`` of the input, of the input's shape.
BATCH_NORMS = (L.BatchNorm1d, L.BatchNorm2d)
#: Layer norms: normalisation over a sample's axes, linear once its standard deviation (RMSNorm:
#: its root mean square) is held fixed (the LN-rule of Ali et al. 2022).
LAYER_NORMS = (L.LayerNorm, L.LayerNorm2d, L.RMSNorm)
#: Sums: a residual block's ``y = a + b``, a graph's ``y = sum_i x_i``.
SUMS = (L.Add,)
#: Concatenation: its gradient splits the relevance back into the inputs' slices, exactly.
CONCATENATIONS = (L.Concat,)
#: Element-wise products of two factors, one of them a gate (squeeze-and-excitation).
PRODUCTS = (L.Mul,)
#: Matrix products of two activations (``torch.matmul``): an attention's ``q k^T`` and ``A v``.
MATRIX_PRODUCTS = (L.MatMul,)
#: Softmax inside a model (an attention's weights; a trailing one is stripped before LRP).
SOFTMAXES = (L.Softmax,)
#: Self-attention as one layer: projections, bilinear products and softmax inside.
ATTENTION = (MultiheadAttention,)
#: Element-wise activations.
ACTIVATIONS = (L.ReLU, L.ReLU6, L.LeakyReLU, L.Tanh, L.Sigmoid, L.SiLU, L.Hardsigmoid, L.Hardswish,
               L.GELU, L.Hardtanh)  # fmt: skip
#: Layers whose output holds the input's values, re-arranged (``Flatten``, ``Reshape``,
#: ``Permute``), some of them (``Slice``, ``Select``: the others get no relevance) or all as they
#: are: relevance passes through their VJP, which moves each value back.
PASS_THROUGH = (L.Dropout, L.Identity, L.Flatten, L.Reshape, L.Permute, L.Slice, L.Select)

#: Fixed linear (affine) maps of their input: z-type rules run on them without parameters.
FIXED_LINEAR = AVERAGE_POOLS + MEANS + RESAMPLING + BATCH_NORMS
#: Layers whose output has the input's size, through which relevance may pass unchanged.
SHAPE_PRESERVING = ACTIVATIONS + PASS_THROUGH + BATCH_NORMS
#: Every layer kind LRP has a rule for, in the order error messages list them.
SUPPORTED = (PARAMETRIC + MAX_POOLS + AVERAGE_POOLS + MEANS + RESAMPLING + BATCH_NORMS
             + LAYER_NORMS + SUMS + CONCATENATIONS + PRODUCTS + MATRIX_PRODUCTS + SOFTMAXES
             + ATTENTION + ACTIVATIONS + PASS_THROUGH)  # fmt: skip
