"""Grad-CAM (Selvaraju et al. 2017)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import flag
from ..device import deliver, to_host
from ..explanation import Explanation
from ..gradient import output_seed, target_indices
from ..module import Module, Trace, leaf_key, vjp_step
from .base import Analyzer, Target


def upsample_bilinear(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of the last two axes to ``size``, as torch's ``interpolate(mode="bilinear",
    align_corners=False)``: output pixel ``i`` samples input coordinate
    ``max((i + 1/2) * in / out - 1/2, 0)``, between its two nearest input pixels."""

    def axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        source = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0)
        low = np.minimum(np.floor(source).astype(int), n_in - 1)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, (source - low).astype(maps.dtype)

    rl, rh, rf = axis_weights(maps.shape[-2], size[0])
    cl, ch, cf = axis_weights(maps.shape[-1], size[1])
    rows = maps[..., rl, :] * (1 - rf)[:, None] + maps[..., rh, :] * rf[:, None]
    return rows[..., cl] * (1 - cf) + rows[..., ch] * cf


def feature_layer(trace: Trace) -> str:
    """GradCAM's default layer: the last leaf layer of ``trace`` whose output is ``(N, C, h, w)``
    feature maps with more than one position (``h * w > 1``), i.e. the last one before global
    pooling (at 224 x 224: VGG16's ``avgpool``, its 7 x 7 adaptive average pool; ResNet18's
    ``layer4.1.relu``, its last block's output). It depends on the input's size (a small input can pool to 1 x 1 sooner)."""
    spatial = [key for key in trace if trace[key].output.ndim == 4
               and np.prod(trace[key].output.shape[2:]) > 1]  # fmt: skip
    if not spatial:
        raise ValueError(
            "GradCAM: no layer of the model outputs (N, C, h, w) feature maps with more than one "
            "position for this input; pass layer= (a key of model.named_modules())"
        )
    return spatial[-1]


class GradCAM(Analyzer):
    """``weights_c = mean_{i,j} d f_t / d A_c[i, j]``; ``map = ReLU(sum_c weights_c A_c)``
    (``relu=False``: ``sum_c weights_c A_c``, Captum's LayerGradCam default).

    ``A`` is the output of the feature layer named by ``layer``, a key of ``model.named_modules()``
    (``"features.28"``, or a container such as ``"layer4"``, whose output is its last leaf's). The
    attribution is the map at the layer's resolution, ``(N, 1, h, w)`` (Captum's LayerGradCam
    with ``relu_attributions=relu``); ``extras["upsampled"]`` is it resized to the input
    (:func:`upsample_bilinear`).
    """

    heatmap_preset = "cam"

    def __init__(
        self,
        model: Module,
        layer: str | None = None,
        backend: str | None = None,
        relu: bool = True,
    ):
        super().__init__(model, backend)
        self.layer = layer
        self.relu = flag(relu, "GradCAM: relu")
        #: The leaf whose output is ``layer``'s (a container's last leaf); ``None``: chosen per
        #: input by :func:`feature_layer`.
        self.leaf = None if layer is None else leaf_key(self.model, layer, "GradCAM")

    def __call__(self, x: Any, target: Target = None) -> Explanation:
        trace = self.model.trace(x, self.backend)
        indices = target_indices(trace.output, target)
        key = feature_layer(trace) if self.leaf is None else self.leaf
        activation = to_host(trace[key].output)  # the map is made on the host (it is small)
        if activation.ndim != 4:
            raise ValueError(
                f"GradCAM: layer {key!r} outputs shape {activation.shape}; it needs "
                "(N, C, h, w) feature maps"
            )
        seed = output_seed(trace.output, indices)
        grad = self.model.backward_to(trace, seed, vjp_step(trace.backend), key)
        weights = to_host(grad).mean(axis=(2, 3), keepdims=True)
        cam = (weights * activation).sum(axis=1, keepdims=True)
        if self.relu:
            cam = np.maximum(cam, 0)
        upsampled = deliver(upsample_bilinear(cam, trace.input.shape[-2:]), trace.device_input)
        return self.explanation(cam, trace, indices, upsampled=upsampled, layer=key)

    def attribute(
        self,
        inputs: Any,
        target: Target = None,
        relu_attributions: bool = False,
        **captum_args: Any,
    ) -> np.ndarray:
        """Captum's ``LayerGradCam(model, layer).attribute(inputs, target, relu_attributions)``,
        the map at the layer's resolution, without the ReLU unless ``relu_attributions=True``
        (Captum's default, False; this analyzer's own call applies it unless ``relu=False``)."""
        relu = flag(relu_attributions, "GradCAM.attribute: relu_attributions")
        analyzer = (
            self if relu == self.relu else GradCAM(self.model, self.layer, self.backend, relu)
        )
        return Analyzer.attribute(analyzer, inputs, target, **captum_args)
