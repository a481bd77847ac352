"""Leaf layers, named and constructed as in ``torch.nn``; their maths lives in ``npxai.reference``.

Parameters are float32 when a layer is created (initialised as torch does) and keep the dtype of
whatever state dict is loaded into them; each call casts them to the input's dtype, so the input
decides whether the computation runs in float32 or float64.
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from .attention import MultiheadAttention  # noqa: F401  (a leaf layer of its own file)
from .backend import backend_modules, backend_or_default
from .checks import finite_number, flag, positive_int, shown
from .device import add
from .errors import BackendError, LayerInputError
from .init import uniform_fan_in
from .module import Layer
from .reference import conv, pool, resample

IntPair = int | tuple[int, int]


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _pair(value: IntPair, name: str, minimum: int = 1) -> tuple[int, int]:
    """``3 -> (3, 3)``; a pair is checked; anything else raises naming the argument."""
    pair = (value, value) if _is_int(value) else value
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or not all(_is_int(v) and v >= minimum for v in pair)
    ):
        raise ValueError(
            f"{name} must be an int >= {minimum} or a pair of them, got {shown(value)}"
        )
    return int(pair[0]), int(pair[1])


def _ops(backend: str | None):
    """``backend``'s modules (the default backend's for ``None``):
    :func:`npxai.backend.backend_modules`."""
    return backend_modules(backend_or_default(backend))


def _param(layer: Layer, name: str, like: np.ndarray, backend: str | None) -> np.ndarray | None:
    """Parameter or buffer ``name`` in the input's dtype: on the cuda backend the layer's cached
    device copy (:meth:`~npxai.Module.parameter_as`)."""
    value = getattr(layer, name)
    if value is None:
        return None
    if backend_or_default(backend) == "cuda":
        return layer.parameter_as(name, like.dtype, device=True)
    return value.astype(like.dtype, copy=False)


def _host_only(layer: Layer, backend: str | None) -> None:
    """Raise :class:`~npxai.BackendError` on the cuda backend, which ``layer`` does not run on."""
    if backend_or_default(backend) == "cuda":
        raise BackendError(
            f"{type(layer).__name__} does not run on the cuda backend yet; use backend='numba'"
        )


def _expect_ndim(x: np.ndarray, ndims: tuple[int, ...], layout: str) -> None:
    if x.ndim not in ndims:
        raise LayerInputError(f"expected input of shape {layout}, got shape {x.shape}")


def _expect_channels(x: np.ndarray, channels: int, layout: str) -> None:
    if x.shape[1] != channels:
        raise LayerInputError(
            f"expected {channels} channels on axis 1 {layout}, got shape {x.shape}"
        )


class _Affine(Layer):
    """A layer ``y = A_W x + b`` (Linear, Conv2d): subclasses give the map for any parameters,
    :meth:`affine`, and its transpose, :meth:`affine_transpose` (LRP rules run them with modified
    parameters); the forward pass and the VJP use the layer's own."""

    vjp_reads = frozenset()

    def affine(
        self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, backend: str | None = None
    ) -> np.ndarray:
        raise NotImplementedError

    def affine_transpose(
        self, g: np.ndarray, weight: np.ndarray, x: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        raise NotImplementedError

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return self.affine(
            x, _param(self, "weight", x, backend), _param(self, "bias", x, backend), backend
        )

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return self.affine_transpose(grad_y, _param(self, "weight", x, backend), x, backend)


class Linear(_Affine):
    """``y = x W^T + b`` with ``W`` of shape ``(out_features, in_features)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        self.register_parameter("weight", uniform_fan_in((out_features, in_features), in_features))
        self.register_parameter(
            "bias",
            uniform_fan_in((out_features,), in_features) if flag(bias, "Linear: bias") else None,
        )

    def check_input(self, x: np.ndarray) -> None:
        # no negative index: the CUDA simulators' device shapes refuse it
        if x.ndim < 2 or x.shape[x.ndim - 1] != self.in_features:
            raise LayerInputError(
                f"expected input of shape (N, ..., {self.in_features}), got shape {x.shape}"
            )

    def affine(
        self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, backend: str | None = None
    ) -> np.ndarray:
        """This layer's map with other parameters (what LRP rules need): ``x W'^T + b'``."""
        return _ops(backend).linear.linear(x, weight, bias)

    def affine_transpose(
        self, g: np.ndarray, weight: np.ndarray, x: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        """The transpose of :meth:`affine`'s linear part, applied to ``g``: ``g W'``."""
        return _ops(backend).linear.linear_vjp(g, weight)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


ConvPadding = IntPair | str | tuple[tuple[int, int], tuple[int, int]]

_CONV_PADDING_FORMS = (
    "padding must be 'same', 'valid', an int >= 0, a pair (height, width) of them or a pair of "
    "pairs ((top, bottom), (left, right))"
)


def _conv_padding(value: object) -> tuple[int, int] | tuple[tuple[int, int], tuple[int, int]]:
    """Conv2d's numeric ``padding``: ``p -> (p, p)``, a pair as it is, a pair of pairs
    ``((top, bottom), (left, right))`` as it is; anything else raises naming the argument."""

    def count(v: object) -> bool:
        return _is_int(v) and v >= 0

    def pair(v: object) -> bool:
        return isinstance(v, tuple | list) and len(v) == 2 and all(count(p) for p in v)

    if count(value):
        return int(value), int(value)
    if pair(value):
        return int(value[0]), int(value[1])
    if isinstance(value, tuple | list) and len(value) == 2 and all(pair(v) for v in value):
        (top, bottom), (left, right) = value
        return (int(top), int(bottom)), (int(left), int(right))
    hint = ""
    if isinstance(value, tuple | list) and len(value) == 4:
        hint = (
            "; a flat 4-tuple is ambiguous (torch's ZeroPad2d reads it as (left, right, top, "
            "bottom)): write ((top, bottom), (left, right))"
        )
    raise ValueError(f"{_CONV_PADDING_FORMS}, got {shown(value)}{hint}")


class Conv2d(_Affine):
    """2-D cross-correlation with torch's arguments; ``padding`` is an int, a pair
    ``(height, width)``, ``'same'`` (stride 1 only; an odd total pads one more on the
    bottom/right, as torch) or ``'valid'``, or, beyond torch, a pair of pairs
    ``((top, bottom), (left, right))`` for asymmetric zero padding (numpy.pad's order per axis;
    torch's ``ZeroPad2d`` followed by an unpadded ``Conv2d``). A flat 4-tuple is refused: torch's
    ``ZeroPad2d`` reads one as ``(left, right, top, bottom)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: ConvPadding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
    ):
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.dilation = _pair(dilation, "dilation")
        self.groups = positive_int(groups, "groups")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
                f"divisible by groups ({groups})"
            )
        if padding_mode != "zeros":
            raise ValueError(
                f"padding_mode must be 'zeros' (the only one supported), got {padding_mode!r}"
            )
        self.padding_mode = padding_mode
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{_CONV_PADDING_FORMS}, got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1, got stride={self.stride}")
            self.padding = padding
        else:
            self.padding = _conv_padding(padding)
        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.register_parameter("weight", uniform_fan_in(shape, fan_in))
        bias = flag(bias, "Conv2d: bias")
        self.register_parameter("bias", uniform_fan_in((out_channels,), fan_in) if bias else None)

    def explicit_padding(self) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)``; for ``'same'`` the total ``d * (k - 1)`` is split with
        the extra one, if odd, on the bottom/right."""
        if self.padding == "valid":
            return 0, 0, 0, 0
        if self.padding == "same":
            (th, tw) = (d * (k - 1) for d, k in zip(self.dilation, self.kernel_size, strict=True))
            return th // 2, th - th // 2, tw // 2, tw - tw // 2
        if isinstance(self.padding[0], tuple):
            (top, bottom), (left, right) = self.padding
            return top, bottom, left, right
        ph, pw = self.padding
        return ph, ph, pw, pw

    def check_input(self, x: np.ndarray) -> None:
        _expect_ndim(x, (4,), "(N, C, H, W)")
        _expect_channels(x, self.in_channels, "(N, C, H, W)")
        out = conv.conv2d_output_size(
            x.shape[-2:], self.kernel_size, self.stride, self.explicit_padding(), self.dilation
        )
        if min(out) < 1:
            raise LayerInputError(
                f"input of spatial size {x.shape[-2:]} is smaller than the (dilated) kernel"
            )

    def affine(
        self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, backend: str | None = None
    ) -> np.ndarray:
        """This layer's convolution with other parameters (what LRP rules need)."""
        return _ops(backend).conv.conv2d(
            x, weight, bias, self.stride, self.explicit_padding(), self.dilation, self.groups
        )

    def affine_transpose(
        self, g: np.ndarray, weight: np.ndarray, x: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        """The transposed convolution with ``weight``, back to ``x``'s shape."""
        return _ops(backend).conv.conv2d_vjp(
            g, weight, x.shape[-2:], self.stride, self.explicit_padding(), self.dilation,
            self.groups,
        )  # fmt: skip

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class _Pool2d(Layer):
    """Argument checks shared by max and average pooling."""

    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None,
        padding: IntPair,
        dilation: IntPair,
        ceil_mode: bool,
    ):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        self.padding = _pair(padding, "padding", minimum=0)
        self.dilation = _pair(dilation, "dilation")
        self.ceil_mode = flag(ceil_mode, f"{type(self).__name__}: ceil_mode")
        for p, k in zip(self.padding, self.kernel_size, strict=True):
            if p > k // 2:
                raise ValueError(
                    f"padding {self.padding} must be at most half the kernel size "
                    f"{self.kernel_size}, as torch requires"
                )

    def _out_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return tuple(
            pool.pool_output_size(n, k, s, p, d, self.ceil_mode)
            for n, k, s, p, d in zip(
                size, self.kernel_size, self.stride, self.padding, self.dilation, strict=True
            )
        )

    def check_input(self, x: np.ndarray) -> None:
        _expect_ndim(x, (4,), "(N, C, H, W)")
        if min(self._out_size(x.shape[-2:])) < 1:
            raise LayerInputError(
                f"input of spatial size {x.shape[-2:]} is smaller than the pooling window"
            )


class MaxPool2d(_Pool2d):
    """``y = max over each window``; the gradient goes to the first maximal element (as torch)."""

    vjp_reads = frozenset({"input"})

    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ):
        if return_indices:
            raise ValueError(
                "MaxPool2d(return_indices=True) is not supported: npxai layers return one array"
            )
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode)

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).pool.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).pool.max_pool2d_vjp(
            grad_y, x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(_Pool2d):
    """``y = sum over each window / divisor`` with torch's ``count_include_pad`` and
    ``divisor_override``."""

    vjp_reads = frozenset()

    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = flag(count_include_pad, "AvgPool2d: count_include_pad")
        if divisor_override is not None:
            divisor_override = positive_int(divisor_override, "divisor_override")
        self.divisor_override = divisor_override

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).pool.avg_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, self.divisor_override,
        )  # fmt: skip

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).pool.avg_pool2d_vjp(
            grad_y, x.shape[-2:], self.kernel_size, self.stride, self.padding,
            self.count_include_pad, self.divisor_override,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Layer):
    """Average over torch's adaptive bins; ``output_size`` is an int, or a pair whose ``None``
    entries keep the input's size."""

    vjp_reads = frozenset()

    def __init__(self, output_size: int | tuple[int | None, int | None]):
        super().__init__()
        pair = (
            (output_size, output_size)
            if not isinstance(output_size, tuple | list)
            else tuple(output_size)
        )
        if len(pair) != 2 or not all(v is None or (_is_int(v) and v >= 1) for v in pair):
            raise ValueError(
                "output_size must be a positive int or a pair of them (or None), got "
                f"{shown(output_size)}"
            )
        pair = tuple(None if v is None else int(v) for v in pair)
        self.output_size = pair

    def _output_size_for(self, x: np.ndarray) -> tuple[int, int]:
        """The ``(height, width)`` of the output for ``x``: ``None`` keeps the input's size."""
        return tuple(
            n if o is None else o for o, n in zip(self.output_size, x.shape[-2:], strict=True)
        )

    def check_input(self, x: np.ndarray) -> None:
        _expect_ndim(x, (4,), "(N, C, H, W)")

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).pool.adaptive_avg_pool2d(x, self._output_size_for(x))

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).pool.adaptive_avg_pool2d_vjp(grad_y, x.shape[-2:])

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class ConstantPad2d(Layer):
    """``torch.nn.ConstantPad2d``: ``value`` added around the last two axes of an ``(N, C, H, W)``
    input, ``padding`` an int ``>= 0`` (every side) or ``(left, right, top, bottom)``; negative
    padding (torch's cropping) is refused. VJP: ``dL/dy`` without its border. A nonzero
    ``value`` makes the layer affine, not linear: under LRP's z-rules the border outputs have
    ``z = value`` and no input, so their relevance is absorbed, as by a bias. Host backends only
    (on ``backend="cuda"`` a :class:`~npxai.BackendError`)."""

    vjp_reads = frozenset()

    def __init__(self, padding: int | tuple[int, int, int, int], value: float):
        super().__init__()
        sides = (padding,) * 4 if _is_int(padding) else padding
        if (not isinstance(sides, tuple | list) or len(sides) != 4
                or not all(_is_int(p) and p >= 0 for p in sides)):  # fmt: skip
            raise ValueError(
                f"{type(self).__name__}: padding must be an int >= 0 or a 4-tuple (left, right, "
                f"top, bottom) of them (negative padding is not supported), got {shown(padding)}"
            )
        self.padding = tuple(int(p) for p in sides)
        self.value = finite_number(value, f"{type(self).__name__}: value")

    def check_input(self, x: np.ndarray) -> None:
        _expect_ndim(x, (4,), "(N, C, H, W)")

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        _host_only(self, backend)
        left, right, top, bottom = self.padding
        pads = ((0, 0), (0, 0), (top, bottom), (left, right))
        return np.pad(x, pads, constant_values=x.dtype.type(self.value))

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        left, _, top, _ = self.padding
        height, width = x.shape[2:]
        return np.ascontiguousarray(grad_y[:, :, top : top + height, left : left + width])

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ZeroPad2d(ConstantPad2d):
    """``torch.nn.ZeroPad2d``: :class:`ConstantPad2d` with ``value=0``, a linear map."""

    def __init__(self, padding: int | tuple[int, int, int, int]):
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"padding={self.padding}"


class Upsample(Layer):
    """``torch.nn.Upsample`` of an ``(N, C, H, W)`` input: to ``size`` (an int or a pair) or by
    ``scale_factor`` (a positive number or a pair; output ``floor(H * scale_factor)``), one of
    them. ``mode="nearest"`` copies input ``min(floor(j * scale), H - 1)`` to output ``j``
    (torch's rule, in float32; ``scale = 1 / scale_factor`` where one is given, else ``H /
    H_out``); ``mode="bilinear"`` interpolates linearly along each axis with torch's
    ``align_corners`` (``None``: ``False``; refused with ``"nearest"``, as torch). Both are
    fixed linear maps ``y = M_h x M_w^T`` (:mod:`npxai.reference.resample`); VJP ``dL/dx =
    M_h^T (dL/dy) M_w``. Host backends only (on ``backend="cuda"`` a
    :class:`~npxai.BackendError`)."""

    vjp_reads = frozenset()

    def __init__(
        self,
        size: int | tuple[int, int] | None = None,
        scale_factor: float | tuple[float, float] | None = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
    ):
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample: give exactly one of size and scale_factor")
        self.size = None if size is None else _pair(size, "Upsample: size")
        if scale_factor is not None:
            pair = scale_factor if isinstance(scale_factor, tuple | list) else (scale_factor,) * 2
            if len(pair) != 2:
                raise ValueError(
                    "Upsample: scale_factor must be a positive number or a pair of them, got "
                    f"{shown(scale_factor)}"
                )
            pair = tuple(finite_number(s, "Upsample: scale_factor", minimum=0) for s in pair)
            if min(pair) <= 0:
                raise ValueError(
                    f"Upsample: scale_factor must be positive, got {shown(scale_factor)}"
                )
            scale_factor = pair
        self.scale_factor = scale_factor
        if mode not in ("nearest", "bilinear"):
            raise ValueError(f"Upsample: mode must be 'nearest' or 'bilinear', got {shown(mode)}")
        self.mode = mode
        if align_corners is not None:
            flag(align_corners, "Upsample: align_corners")
            if mode == "nearest":
                raise ValueError(
                    "Upsample: align_corners can only be set with mode='bilinear' (as torch)"
                )
        self.align_corners = align_corners

    def _matrices(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(M_h, M_w)`` for an input of ``height`` by ``width``, made once per input size."""

        def make() -> tuple[np.ndarray, np.ndarray]:
            matrices = []
            for axis, n_in in enumerate((height, width)):
                scale = None if self.scale_factor is None else self.scale_factor[axis]
                size = None if self.size is None else self.size[axis]
                n_out = resample.upsample_output_size(n_in, size, scale)
                if self.mode == "nearest":
                    matrices.append(resample.nearest_matrix(n_in, n_out, scale))
                else:
                    corners = bool(self.align_corners)
                    matrices.append(resample.bilinear_matrix(n_in, n_out, scale, corners))
            return matrices[0], matrices[1]

        return self.cached(("upsample", height, width), make)

    def check_input(self, x: np.ndarray) -> None:
        _expect_ndim(x, (4,), "(N, C, H, W)")
        if self.scale_factor is not None:
            out = [resample.upsample_output_size(n, None, s)
                   for n, s in zip(x.shape[2:], self.scale_factor, strict=True)]  # fmt: skip
            if min(out) < 1:
                raise LayerInputError(
                    f"input of spatial size {x.shape[2:]} with scale_factor={self.scale_factor} "
                    f"gives an empty output {tuple(out)}"
                )

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        _host_only(self, backend)
        return resample.upsample(x, *self._matrices(*x.shape[2:]))

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return resample.upsample_vjp(grad_y, *self._matrices(*x.shape[2:]))

    def extra_repr(self) -> str:
        shown_size = f"size={self.size}" if self.size else f"scale_factor={self.scale_factor}"
        corners = "" if self.align_corners is None else f", align_corners={self.align_corners}"
        return f"{shown_size}, mode={self.mode!r}{corners}"


class Mean(Layer):
    """``y = x.mean(dim, keepdim)`` (``torch.mean``) over the axes ``dim``, an int or a tuple of
    ints (negative ones count from the end), never the batch axis 0 (samples stay apart). VJP:
    ``dL/dx = dL/dy / n`` spread over the ``n`` averaged entries. Host backends only (on
    ``backend="cuda"`` a :class:`~npxai.BackendError`)."""

    vjp_reads = frozenset()

    def __init__(self, dim: int | tuple[int, ...], keepdim: bool = False):
        super().__init__()
        dims = (dim,) if _is_int(dim) else dim
        if not isinstance(dims, tuple | list) or not dims or not all(_is_int(d) for d in dims):
            raise ValueError(f"Mean: dim must be an int or a tuple of ints, got {shown(dim)}")
        if 0 in dims:
            raise ValueError(
                f"Mean: dim must not hold the batch axis 0 (samples stay apart), got {shown(dim)}"
            )
        self.dim = int(dim) if _is_int(dim) else tuple(int(d) for d in dims)
        self.keepdim = flag(keepdim, "Mean: keepdim")

    def _axes(self, ndim: int) -> tuple[int, ...]:
        return tuple(d % ndim for d in ((self.dim,) if _is_int(self.dim) else self.dim))

    def check_input(self, x: np.ndarray) -> None:
        dims = (self.dim,) if _is_int(self.dim) else self.dim
        if not all(-x.ndim <= d < x.ndim for d in dims):
            raise LayerInputError(f"dim={self.dim} is out of range for input of shape {x.shape}")
        axes = self._axes(x.ndim)
        if 0 in axes or len(set(axes)) < len(axes):
            raise LayerInputError(
                f"dim={self.dim} names the batch axis 0 or one axis twice for input of shape "
                f"{x.shape}; expected distinct axes 1 .. {x.ndim - 1}"
            )

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        _host_only(self, backend)
        return np.ascontiguousarray(x.mean(axis=self._axes(x.ndim), keepdims=self.keepdim))

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        axes = self._axes(x.ndim)
        g = grad_y if self.keepdim else np.expand_dims(grad_y, axes)
        count = int(np.prod([x.shape[a] for a in axes]))
        return np.ascontiguousarray(np.broadcast_to(g / count, x.shape))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, keepdim={self.keepdim}"


class _BatchNorm(Layer):
    """Evaluation-mode batch norm over channel axis 1 with the running statistics."""

    vjp_reads = frozenset()

    optional_keys = frozenset({"num_batches_tracked"})
    ndims: tuple[int, ...] = ()
    layout = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        super().__init__()
        self.num_features = positive_int(num_features, "num_features")
        eps = finite_number(eps, f"{type(self).__name__}: eps", minimum=0)
        if momentum is not None:
            momentum = finite_number(momentum, f"{type(self).__name__}: momentum (or None)")
        affine = flag(affine, f"{type(self).__name__}: affine")
        if flag(track_running_stats, f"{type(self).__name__}: track_running_stats") is False:
            raise ValueError(
                "track_running_stats=False is not supported: npxai runs batch norm in evaluation "
                "mode, with running statistics, so that samples in a batch do not interact"
            )
        self.eps, self.momentum, self.affine = eps, momentum, affine
        self.register_parameter("weight", np.ones(num_features, np.float32) if affine else None)
        self.register_parameter("bias", np.zeros(num_features, np.float32) if affine else None)
        self.register_buffer("running_mean", np.zeros(num_features, np.float32))
        self.register_buffer("running_var", np.ones(num_features, np.float32))
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))

    def check_input(self, x: np.ndarray) -> None:
        _expect_ndim(x, self.ndims, self.layout)
        _expect_channels(x, self.num_features, self.layout)

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).norm.batch_norm(
            x, _param(self, "running_mean", x, backend), _param(self, "running_var", x, backend),
            _param(self, "weight", x, backend), _param(self, "bias", x, backend), self.eps,
        )  # fmt: skip

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).norm.batch_norm_vjp(
            grad_y,
            _param(self, "running_var", x, backend),
            _param(self, "weight", x, backend),
            self.eps,
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}"


class BatchNorm1d(_BatchNorm):
    """Batch norm of ``(N, C)`` or ``(N, C, L)`` inputs (evaluation mode)."""

    ndims = (2, 3)
    layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm of ``(N, C, H, W)`` inputs (evaluation mode)."""

    ndims = (4,)
    layout = "(N, C, H, W)"


def _normalized_shape(value: object, owner: str) -> tuple[int, ...]:
    """``normalized_shape`` (a positive int or a non-empty tuple of them) as a tuple."""
    shape = (value,) if _is_int(value) else value
    if (not isinstance(shape, tuple | list) or not shape
            or not all(_is_int(n) and n >= 1 for n in shape)):  # fmt: skip
        raise ValueError(
            f"{owner}: normalized_shape must be a positive int or a non-empty tuple of them, "
            f"got {shown(value)}"
        )
    return tuple(int(n) for n in shape)


def _expect_trailing(x: np.ndarray, shape: tuple[int, ...]) -> None:
    """``x`` of shape ``(N, ..., *shape)``, else :class:`LayerInputError`."""
    k = len(shape)
    if x.ndim <= k or x.shape[x.ndim - k :] != shape:
        layout = ", ".join(map(str, shape))
        raise LayerInputError(f"expected input of shape (N, ..., {layout}), got shape {x.shape}")


class _LayerNorm(Layer):
    """Normalisation of each sample over some of its axes, ``y = (x - mean) / sqrt(var + eps) * w
    + b`` (biased variance), with ``w``, ``b`` (keys ``weight``, ``bias``) of those axes' shape;
    ``backend_modules(backend).norm.layer_norm`` over axes ``start .. stop - 1``."""

    vjp_reads = frozenset({"input"})

    def _axes(self, ndim: int) -> tuple[int, int]:
        """The normalised axes ``start .. stop - 1`` of an ``ndim`` input."""
        raise NotImplementedError

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).norm.layer_norm(
            x, _param(self, "weight", x, backend), _param(self, "bias", x, backend), self.eps,
            *self._axes(x.ndim),
        )  # fmt: skip

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).norm.layer_norm_vjp(
            grad_y, x, _param(self, "weight", x, backend), self.eps, *self._axes(x.ndim)
        )

    def vjp_fixed_std(
        self, x: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        """The VJP of the linear map ``x' -> (x' - mean(x')) * w / sigma`` with ``sigma`` held at
        its value for ``x``: ``(g - mean(g)) / sigma``, ``g = dL/dy * w`` (LRP's
        :class:`~npxai.lrp.rules.LayerNormRule`)."""
        return _ops(backend).norm.layer_norm_vjp(
            grad_y, x, _param(self, "weight", x, backend), self.eps, *self._axes(x.ndim), True
        )


class LayerNorm(_LayerNorm):
    """``torch.nn.LayerNorm``: each sample normalised over its trailing axes of shape
    ``normalized_shape`` (an int or a tuple of positive ints), ``y = (x - mean) / sqrt(var + eps)
    * weight + bias``; ``elementwise_affine=False`` has neither parameter, ``bias=False`` no
    bias. The batch axis is never normalised (samples stay apart). VJP: ``dL/dx = (g - mean(g) -
    x_hat mean(g x_hat)) / sqrt(var + eps)``, ``g = dL/dy * weight``, ``x_hat`` the normalised
    input."""

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
    ):
        super().__init__()
        self.normalized_shape = _normalized_shape(normalized_shape, "LayerNorm")
        self.eps = finite_number(eps, "LayerNorm: eps", minimum=0)
        self.elementwise_affine = flag(elementwise_affine, "LayerNorm: elementwise_affine")
        has_bias = flag(bias, "LayerNorm: bias") and self.elementwise_affine
        weight = np.ones(self.normalized_shape, np.float32)
        self.register_parameter("weight", weight if self.elementwise_affine else None)
        self.register_parameter("bias", np.zeros_like(weight) if has_bias else None)

    def _axes(self, ndim: int) -> tuple[int, int]:
        return ndim - len(self.normalized_shape), ndim

    def check_input(self, x: np.ndarray) -> None:
        _expect_trailing(x, self.normalized_shape)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


class LayerNorm2d(_LayerNorm):
    """torchvision's ``LayerNorm2d`` (ConvNeXt's): each position of an ``(N, C, H, W)`` input
    normalised over its ``C`` channels, ``y = (x - mean_c) / sqrt(var_c + eps) * weight_c +
    bias_c`` (torchvision permutes to NHWC, applies ``LayerNorm(C)`` and permutes back); VJP as
    :class:`LayerNorm`'s over the channel axis."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.num_channels = positive_int(num_channels, "LayerNorm2d: num_channels")
        self.eps = finite_number(eps, "LayerNorm2d: eps", minimum=0)
        self.register_parameter("weight", np.ones(self.num_channels, np.float32))
        self.register_parameter("bias", np.zeros(self.num_channels, np.float32))

    def _axes(self, ndim: int) -> tuple[int, int]:
        return 1, 2

    def check_input(self, x: np.ndarray) -> None:
        _expect_ndim(x, (4,), "(N, C, H, W)")
        _expect_channels(x, self.num_channels, "(N, C, H, W)")

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}"


class RMSNorm(Layer):
    """``torch.nn.RMSNorm``: each sample scaled over its trailing axes of shape
    ``normalized_shape``, ``y = x / rms * weight``, ``rms = sqrt(mean(x^2) + eps)``; ``eps=None``
    (torch's default) is the machine epsilon of the input's dtype. VJP: ``dL/dx = (g - x_hat
    mean(g x_hat)) / rms``, ``g = dL/dy * weight``, ``x_hat = x / rms``. NumPy on both host
    backends (on ``backend="cuda"`` a :class:`~npxai.BackendError`)."""

    vjp_reads = frozenset({"input"})

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float | None = None,
        elementwise_affine: bool = True,
    ):
        super().__init__()
        self.normalized_shape = _normalized_shape(normalized_shape, "RMSNorm")
        self.eps = None if eps is None else finite_number(eps, "RMSNorm: eps", minimum=0)
        self.elementwise_affine = flag(elementwise_affine, "RMSNorm: elementwise_affine")
        weight = np.ones(self.normalized_shape, np.float32)
        self.register_parameter("weight", weight if self.elementwise_affine else None)

    def check_input(self, x: np.ndarray) -> None:
        _expect_trailing(x, self.normalized_shape)

    def _parts(self, x: np.ndarray, backend: str | None) -> tuple[np.ndarray, np.ndarray, tuple]:
        """``(1 / rms, weight (1 if absent), the normalised axes)``."""
        _host_only(self, backend)
        axes = tuple(range(x.ndim - len(self.normalized_shape), x.ndim))
        eps = np.finfo(x.dtype).eps if self.eps is None else self.eps
        inv_rms = 1 / np.sqrt((x * x).mean(axis=axes, keepdims=True) + x.dtype.type(eps))
        weight = x.dtype.type(1) if self.weight is None else self.weight.astype(x.dtype)
        return inv_rms, weight, axes

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        inv_rms, weight, _ = self._parts(x, backend)
        return x * inv_rms * weight

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        inv_rms, weight, axes = self._parts(x, backend)
        g, x_hat = grad_y * weight, x * inv_rms
        return (g - x_hat * (g * x_hat).mean(axis=axes, keepdims=True)) * inv_rms

    def vjp_fixed_std(
        self, x: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        """The VJP of ``x' -> x' * weight / rms`` with ``rms`` held at its value for ``x``:
        ``dL/dy * weight / rms`` (LRP's :class:`~npxai.lrp.rules.LayerNormRule`)."""
        inv_rms, weight, _ = self._parts(x, backend)
        return grad_y * weight * inv_rms

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class ReLU(Layer):
    """``y = max(x, 0)``; ``inplace`` is accepted for torch compatibility and has no effect."""

    vjp_reads = frozenset({"output"})

    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).activation.relu(x)

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).activation.relu_vjp(grad_y, y)  # y > 0 exactly where x > 0


class ReLU6(Layer):
    """``y = min(max(x, 0), 6)``."""

    vjp_reads = frozenset({"input"})

    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).activation.relu6(x)

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).activation.relu6_vjp(grad_y, x)


class LeakyReLU(Layer):
    """``y = x if x > 0 else negative_slope * x``."""

    vjp_reads = frozenset({"input"})

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = finite_number(negative_slope, "LeakyReLU: negative_slope")

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).activation.leaky_relu(x, self.negative_slope)

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).activation.leaky_relu_vjp(grad_y, x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Tanh(Layer):
    """``y = tanh(x)``."""

    vjp_reads = frozenset({"output"})

    def __init__(self) -> None:
        super().__init__()

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).activation.tanh(x)

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).activation.tanh_vjp(grad_y, y)


class Sigmoid(Layer):
    """``y = 1 / (1 + exp(-x))``."""

    vjp_reads = frozenset({"output"})

    def __init__(self) -> None:
        super().__init__()

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).activation.sigmoid(x)

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).activation.sigmoid_vjp(grad_y, y)


class SiLU(Layer):
    """``y = x sigmoid(x)`` (Swish). ``inplace`` is accepted for torch compatibility and has no effect."""

    vjp_reads = frozenset({"input"})

    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).activation.silu(x)

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).activation.silu_vjp(grad_y, x)


class Hardsigmoid(Layer):
    """``y = min(max(x + 3, 0), 6) / 6``. ``inplace`` is accepted for torch compatibility and has no effect."""

    vjp_reads = frozenset({"input"})

    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).activation.hardsigmoid(x)

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).activation.hardsigmoid_vjp(grad_y, x)


class Hardswish(Layer):
    """``y = x min(max(x + 3, 0), 6) / 6`` (MobileNetV3's). ``inplace`` is accepted for torch compatibility and has no effect."""

    vjp_reads = frozenset({"input"})

    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).activation.hardswish(x)

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).activation.hardswish_vjp(grad_y, x)


class GELU(Layer):
    """``y = x Phi(x)``, ``Phi`` the standard normal CDF (``approximate="none"``), or its tanh
    form (``"tanh"``), as ``torch.nn.GELU``."""

    vjp_reads = frozenset({"input"})

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(
                f"GELU: approximate must be 'none' or 'tanh', got {shown(approximate)}"
            )
        self.approximate = approximate

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).activation.gelu(x, self.approximate)

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).activation.gelu_vjp(grad_y, x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Hardtanh(Layer):
    """``y = min(max(x, min_val), max_val)`` (``torch.nn.Hardtanh``; ONNX's ``Clip``), the bounds
    cast to the input's dtype. VJP: ``dL/dx = dL/dy * [min_val < x < max_val]``, so 0 at
    ``x == min_val`` and ``x == max_val`` exactly, as torch's (and 0 at a NaN, as torch's
    vectorised path). ``inplace`` is accepted for torch compatibility and has no effect."""

    vjp_reads = frozenset({"input"})

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        self.min_val = finite_number(min_val, "Hardtanh: min_val")
        self.max_val = finite_number(max_val, "Hardtanh: max_val")
        if not self.min_val < self.max_val:
            raise ValueError(
                f"Hardtanh: max_val ({self.max_val}) must be greater than min_val ({self.min_val})"
            )

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).activation.hardtanh(x, self.min_val, self.max_val)

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).activation.hardtanh_vjp(grad_y, x, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}"


class Softmax(Layer):
    """``y = exp(x) / sum exp(x)`` along ``dim`` (which must be given; torch's implicit choice is
    deprecated)."""

    vjp_reads = frozenset({"output"})

    def __init__(self, dim: int | None = None):
        super().__init__()
        if not _is_int(dim):
            raise ValueError(f"Softmax needs an explicit int dim, got {shown(dim)}")
        self.dim = int(dim)

    def check_input(self, x: np.ndarray) -> None:
        if not -x.ndim <= self.dim < x.ndim:
            raise LayerInputError(f"dim={self.dim} is out of range for input of shape {x.shape}")

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return _ops(backend).activation.softmax(x, self.dim)

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return _ops(backend).activation.softmax_vjp(grad_y, y, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Flatten(Layer):
    """Merge axes ``start_dim .. end_dim`` into one."""

    vjp_reads = frozenset()

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if not _is_int(value):
                raise ValueError(f"Flatten: {name} must be an int, got {shown(value)}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def _span(self, ndim: int) -> tuple[int, int]:
        return self.start_dim % ndim, self.end_dim % ndim

    def check_input(self, x: np.ndarray) -> None:
        ok = all(-x.ndim <= d < x.ndim for d in (self.start_dim, self.end_dim))
        if not ok or self._span(x.ndim)[0] > self._span(x.ndim)[1]:
            raise LayerInputError(
                f"start_dim={self.start_dim}, end_dim={self.end_dim} do not fit input of shape {x.shape}"
            )

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        start, end = self._span(x.ndim)
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1 :])

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return grad_y.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


def _int_tuple(value: object, name: str) -> tuple[int, ...]:
    """A non-empty list or tuple of ints as a tuple; anything else raises naming the argument."""
    if not isinstance(value, tuple | list) or not value or not all(_is_int(v) for v in value):
        raise ValueError(f"{name} must be a non-empty list or tuple of ints, got {shown(value)}")
    return tuple(int(v) for v in value)


class Permute(Layer):
    """``y = x.permute(dims)``, contiguous, as ``torchvision.ops.Permute``: ``dims`` orders every
    axis of the input, the batch axis included, and must keep it first (``dims[0] == 0``; ConvNeXt's
    ``Permute([0, 2, 3, 1])`` takes NCHW to NHWC). Negative entries count from the end. VJP: the
    inverse permutation of ``dL/dy``. Host backends only (on ``backend="cuda"`` a
    :class:`~npxai.BackendError`)."""

    vjp_reads = frozenset()

    def __init__(self, dims: list[int] | tuple[int, ...]):
        super().__init__()
        given = _int_tuple(dims, "Permute: dims")
        n = len(given)
        if sorted(d % n if -n <= d < n else d for d in given) != list(range(n)):
            raise ValueError(
                f"Permute: dims must be a permutation of 0 .. {n - 1} (negative entries count "
                f"from the end), got {shown(dims)}"
            )
        if given[0] % n != 0:
            raise ValueError(
                f"Permute: dims[0] must be 0 (the batch axis stays first), got {shown(dims)}"
            )
        self.dims = tuple(d % n for d in given)

    def check_input(self, x: np.ndarray) -> None:
        if x.ndim != len(self.dims):
            raise LayerInputError(
                f"expected input of {len(self.dims)} axes for dims={list(self.dims)}, got shape "
                f"{x.shape}"
            )

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        _host_only(self, backend)
        return np.ascontiguousarray(x.transpose(self.dims))

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return np.ascontiguousarray(grad_y.transpose(np.argsort(self.dims)))

    def extra_repr(self) -> str:
        return f"dims={list(self.dims)}"


class Reshape(Layer):
    """``y = x.reshape((N,) + shape)``: each sample reshaped, the batch axis kept. One entry of
    ``shape`` may be ``-1`` (inferred from the others); the rest are positive. (torch has no
    ``nn.Reshape``; this is the target of ONNX's ``Reshape``, ``Squeeze``, ``Unsqueeze`` and
    ``Flatten`` with static shapes.) VJP: ``dL/dy`` reshaped back."""

    vjp_reads = frozenset()

    def __init__(self, shape: list[int] | tuple[int, ...]):
        super().__init__()
        given = _int_tuple(shape, "Reshape: shape")
        if not all(n >= 1 or n == -1 for n in given) or given.count(-1) > 1:
            raise ValueError(
                f"Reshape: shape must hold positive ints and at most one -1, got {shown(shape)}"
            )
        self.shape = given

    def _sample_shape(self, size: int) -> tuple[int, ...] | None:
        """The per-sample output shape for ``size`` elements, ``None`` where it does not fit."""
        known = int(np.prod([n for n in self.shape if n != -1]))
        if -1 in self.shape:
            if size % known:
                return None
            return tuple(size // known if n == -1 else n for n in self.shape)
        return self.shape if known == size else None

    def check_input(self, x: np.ndarray) -> None:
        if x.ndim < 1 or self._sample_shape(int(np.prod(x.shape[1:]))) is None:
            raise LayerInputError(
                f"expected input of shape (N, ...) with a number of elements per sample that fits "
                f"shape={self.shape}, got shape {x.shape}"
            )

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return x.reshape((x.shape[0], *self._sample_shape(int(np.prod(x.shape[1:])))))

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return grad_y.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


def _axis_of(dim: int, x: np.ndarray, name: str) -> int:
    """``dim`` as an axis of ``x`` other than the batch axis 0, or a LayerInputError."""
    if not -x.ndim <= dim < x.ndim or dim % x.ndim == 0:
        raise LayerInputError(
            f"{name}: dim={dim} must be an axis of the input other than the batch axis 0, got "
            f"input of shape {x.shape}"
        )
    return dim % x.ndim


class Slice(Layer):
    """``y = x[..., start:stop:step, ...]`` along ``dim`` (Python's slice rules, ``None`` for an
    open end; ``step >= 1``), never the batch axis: ONNX's ``Slice``, and ``x[:, 1:]``. VJP:
    ``dL/dy`` put back into the slice, 0 elsewhere; under LRP the relevance goes back the same
    way (the positions left out get none). Host backends only (on ``backend="cuda"`` a
    :class:`~npxai.BackendError`)."""

    vjp_reads = frozenset()

    def __init__(self, dim: int, start: int | None = None, stop: int | None = None, step: int = 1):
        super().__init__()
        for name, value in (("dim", dim), ("start", start), ("stop", stop), ("step", step)):
            if not (_is_int(value) or (value is None and name in ("start", "stop"))):
                raise ValueError(f"Slice: {name} must be an int, got {shown(value)}")
        if step < 1:
            raise ValueError(f"Slice: step must be >= 1, got {step}")
        self.dim, self.start, self.stop, self.step = int(dim), start, stop, int(step)

    def _index(self, x: np.ndarray) -> tuple:
        index = [slice(None)] * x.ndim
        index[_axis_of(self.dim, x, "Slice")] = slice(self.start, self.stop, self.step)
        return tuple(index)

    def check_input(self, x: np.ndarray) -> None:
        if x[self._index(x)].size == 0:
            raise LayerInputError(f"{self!r} keeps nothing of an input of shape {x.shape}")

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        _host_only(self, backend)
        return np.ascontiguousarray(x[self._index(x)])

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        grad_x = np.zeros(x.shape, grad_y.dtype)
        grad_x[self._index(x)] = grad_y
        return grad_x

    def extra_repr(self) -> str:
        return f"dim={self.dim}, start={self.start}, stop={self.stop}, step={self.step}"


class Select(Layer):
    """``y = x.select(dim, index)`` (``torch.select``: ``x[:, 0]`` for ``dim=1, index=0``, a
    class token), the axis removed, never the batch axis: ONNX's ``Gather`` of one index. VJP:
    ``dL/dy`` put back at ``index``, 0 elsewhere (under LRP, the relevance too). Host backends
    only (on ``backend="cuda"`` a :class:`~npxai.BackendError`)."""

    vjp_reads = frozenset()

    def __init__(self, dim: int, index: int):
        super().__init__()
        for name, value in (("dim", dim), ("index", index)):
            if not _is_int(value):
                raise ValueError(f"Select: {name} must be an int, got {shown(value)}")
        self.dim, self.index = int(dim), int(index)

    def check_input(self, x: np.ndarray) -> None:
        axis = _axis_of(self.dim, x, "Select")
        if not -x.shape[axis] <= self.index < x.shape[axis]:
            raise LayerInputError(
                f"index {self.index} is out of range for axis {axis} of an input of shape {x.shape}"
            )

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        _host_only(self, backend)
        return np.ascontiguousarray(np.take(x, self.index, axis=self.dim % x.ndim))

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        grad_x = np.zeros(x.shape, grad_y.dtype)
        index = [slice(None)] * x.ndim
        index[self.dim % x.ndim] = self.index
        grad_x[tuple(index)] = grad_y
        return grad_x

    def extra_repr(self) -> str:
        return f"dim={self.dim}, index={self.index}"


class Dropout(Layer):
    """Identity: npxai only runs inference, where dropout does nothing."""

    vjp_reads = frozenset()

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, Real) or not 0 <= p <= 1:
            raise ValueError(f"dropout probability p must be in [0, 1], got {shown(p)}")
        self.p = float(p)

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return x

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return grad_y

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Identity(Layer):
    """``y = x``; any constructor arguments are ignored, as in torch."""

    vjp_reads = frozenset()

    def __init__(self, *args: object, **kwargs: object):
        super().__init__()

    def forward(self, x: np.ndarray, backend: str | None = None) -> np.ndarray:
        return x

    def vjp(
        self, x: np.ndarray, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> np.ndarray:
        return grad_y


class Add(Layer):
    """The sum of its inputs: ``y = a + b`` for a residual block's pair ``(a, b)``, ``y = sum_i
    x_i`` for a graph node with more inputs (:class:`npxai.Graph`). Inputs of one shape run on
    every backend; on the host backends they may also broadcast as in torch (a learned positional
    embedding ``(1, S, E)`` added to tokens ``(N, S, E)``), each input's VJP then summed over the
    axes it was broadcast along.

    It is a layer of its own so that a relevance rule can be assigned to it.
    """

    def __init__(self) -> None:
        super().__init__()

    def check_input(self, x: tuple[np.ndarray, ...]) -> None:
        if not isinstance(x, tuple) or len(x) < 2:
            raise LayerInputError("expected two or more inputs to add")
        try:
            np.broadcast_shapes(*(a.shape for a in x))
        except ValueError:
            if len(x) == 2:
                raise LayerInputError(
                    f"the branch output {x[0].shape} and the shortcut output {x[1].shape} must "
                    "have one shape (or broadcast to one: a positional embedding of (1, S, E) "
                    "takes S tokens, no more)"
                ) from None
            shape = x[0].shape
            for i, a in enumerate(x[1:], 1):
                try:
                    shape = np.broadcast_shapes(shape, a.shape)
                except ValueError:
                    raise LayerInputError(
                        f"input {i} {a.shape} and input 0 {x[0].shape} must have one shape (or "
                        "broadcast to one)"
                    ) from None

    def forward(self, x: tuple[np.ndarray, ...], backend: str | None = None) -> np.ndarray:
        if any(a.shape != x[0].shape for a in x[1:]):
            _host_only(self, backend)
        y = add(x[0], x[1])
        for a in x[2:]:
            y = add(y, a)
        return y

    def vjp(
        self,
        x: tuple[np.ndarray, ...],
        y: np.ndarray,
        grad_y: np.ndarray,
        backend: str | None = None,
    ) -> tuple[np.ndarray, ...]:
        return tuple(grad_y if a.shape == grad_y.shape else sum_to_shape(grad_y, a.shape)
                     for a in x)  # fmt: skip


class Concat(Layer):
    """``y = concatenate(x_1, x_2, ..., dim)`` (``torch.cat``): inputs of one dtype and one shape
    but along ``dim``; its VJP splits ``dL/dy`` back into the inputs' slices. An input with a
    batch of 1 beside inputs of a batch of ``N`` (``dim`` not 0) is repeated ``N`` times first, as
    a ViT's learned class token, ``torch.cat([token.expand(n, -1, -1), x], dim=1)``; its VJP is
    summed over the batch. Host backends only (on ``backend="cuda"`` a
    :class:`~npxai.BackendError`)."""

    vjp_reads = frozenset()  # the inputs' shapes only

    def __init__(self, dim: int = 1):
        super().__init__()
        if not _is_int(dim):
            raise ValueError(f"Concat: dim must be an int, got {shown(dim)}")
        self.dim = int(dim)

    def _axis(self, ndim: int) -> int:
        return self.dim % ndim

    def check_input(self, x: tuple[np.ndarray, ...]) -> None:
        if not isinstance(x, tuple) or len(x) < 2:
            raise LayerInputError("expected two or more inputs to concatenate")
        first = x[0]
        if not -first.ndim <= self.dim < first.ndim:
            raise LayerInputError(
                f"dim {self.dim} is out of range for inputs of shape {first.shape}"
            )
        axis, batch = self._axis(first.ndim), self._batch(x)

        def lead(a: np.ndarray) -> tuple[int, ...]:  # the axes before dim, a batch of 1 repeated
            return (batch if a.shape[0] == 1 else a.shape[0], *a.shape[1:axis]) if axis else ()

        for i, a in enumerate(x[1:], 1):
            if (a.ndim != first.ndim or lead(a) != lead(first)
                    or a.shape[axis + 1 :] != first.shape[axis + 1 :] or a.dtype != first.dtype):  # fmt: skip
                raise LayerInputError(
                    f"input {i} {a.dtype} {a.shape} and input 0 {first.dtype} {first.shape} must "
                    f"have one dtype and one shape but along dim {self.dim}"
                )

    @staticmethod
    def _batch(x: tuple[np.ndarray, ...]) -> int:
        """The batch: the largest of the inputs' first axes."""
        return max(a.shape[0] for a in x)

    def forward(self, x: tuple[np.ndarray, ...], backend: str | None = None) -> np.ndarray:
        _host_only(self, backend)
        axis, batch = self._axis(x[0].ndim), self._batch(x)
        if axis:
            x = tuple(np.broadcast_to(a, (batch, *a.shape[1:])) for a in x)
        return np.concatenate(x, axis=axis)

    def vjp(
        self,
        x: tuple[np.ndarray, ...],
        y: np.ndarray,
        grad_y: np.ndarray,
        backend: str | None = None,
    ) -> tuple[np.ndarray, ...]:
        return tuple(part if part.shape == a.shape else part.sum(axis=0, keepdims=True)
                     for part, a in zip(self.split(grad_y, x), x, strict=True))  # fmt: skip

    def split(self, grad_y: np.ndarray, x: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """``grad_y`` cut into the inputs' slices along ``dim``, each of the batch's size (a
        repeated input's part per sample: LRP's relevance for it, which a graph constant
        absorbs)."""
        axis = self._axis(grad_y.ndim)
        edges = np.cumsum([a.shape[axis] for a in x])[:-1]
        return tuple(np.ascontiguousarray(part) for part in np.split(grad_y, edges, axis=axis))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def sum_to_shape(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a`` summed over the axes that broadcasting ``shape`` to ``a.shape`` added or stretched."""
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and a.shape[lead + i] != 1
    )
    return a.sum(axis=axes, keepdims=True).reshape(shape) if axes else a


class Mul(Layer):
    """``y = a * b``, element-wise with NumPy's (and torch's) broadcasting: a squeeze-and-excitation
    gate ``x * g`` with ``g`` of shape ``(N, C, 1, 1)``. VJP: ``dL/da = sum_b dL/dy * b`` and
    ``dL/db = sum_a dL/dy * a``, each summed over the axes its factor was broadcast along. Host
    backends only (on ``backend="cuda"`` a :class:`~npxai.BackendError`)."""

    def __init__(self) -> None:
        super().__init__()

    def check_input(self, x: tuple[np.ndarray, np.ndarray]) -> None:
        if not isinstance(x, tuple) or len(x) != 2:
            raise LayerInputError("expected two inputs to multiply")
        if x[0].dtype != x[1].dtype:
            raise LayerInputError(f"inputs {x[0].dtype} and {x[1].dtype} must have one dtype")
        try:
            np.broadcast_shapes(x[0].shape, x[1].shape)
        except ValueError:
            raise LayerInputError(
                f"inputs {x[0].shape} and {x[1].shape} do not broadcast to one shape"
            ) from None

    def forward(self, x: tuple[np.ndarray, np.ndarray], backend: str | None = None) -> np.ndarray:
        _host_only(self, backend)
        return x[0] * x[1]

    def vjp(
        self,
        x: tuple[np.ndarray, np.ndarray],
        y: np.ndarray,
        grad_y: np.ndarray,
        backend: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        a, b = x
        return sum_to_shape(grad_y * b, a.shape), sum_to_shape(grad_y * a, b.shape)


class MatMul(Layer):
    """``y = a @ b`` (``torch.matmul``) for inputs of two or more axes: the last two are matrices,
    the leading ones broadcast (``(N, H, T, D) @ (N, H, D, T)``, or a shared ``(D, E)`` factor).
    VJP: ``dL/da = dL/dy @ b^T`` and ``dL/db = a^T @ dL/dy``, each summed over the axes its factor
    was broadcast along. Host backends only (on ``backend="cuda"`` a
    :class:`~npxai.BackendError`); LRP: :class:`~npxai.rules.ProductRule`."""

    vjp_reads = frozenset({"input"})

    def __init__(self) -> None:
        super().__init__()

    def check_input(self, x: tuple[np.ndarray, np.ndarray]) -> None:
        if not isinstance(x, tuple) or len(x) != 2:
            raise LayerInputError("expected two inputs to multiply as matrices")
        a, b = x
        if a.dtype != b.dtype:
            raise LayerInputError(f"inputs {a.dtype} and {b.dtype} must have one dtype")
        if a.ndim < 2 or b.ndim < 2 or a.shape[a.ndim - 1] != b.shape[b.ndim - 2]:
            raise LayerInputError(
                f"expected inputs of shapes (..., n, k) and (..., k, m), got {a.shape} and {b.shape}"
            )
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise LayerInputError(
                f"the leading axes of {a.shape} and {b.shape} do not broadcast to one shape"
            ) from None

    def forward(self, x: tuple[np.ndarray, np.ndarray], backend: str | None = None) -> np.ndarray:
        _host_only(self, backend)
        return np.matmul(x[0], x[1])

    def vjp(
        self,
        x: tuple[np.ndarray, np.ndarray],
        y: np.ndarray,
        grad_y: np.ndarray,
        backend: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        a, b = x
        grad_a = np.matmul(grad_y, np.swapaxes(b, -1, -2))
        grad_b = np.matmul(np.swapaxes(a, -1, -2), grad_y)
        return sum_to_shape(grad_a, a.shape), sum_to_shape(grad_b, b.shape)
