"""How a perturbation metric fills in a perturbed entry: ``replacement(x, imputer, rng)`` gives,
for a batch ``x (N, *sample)``, the value ``r_{n,i}`` that entry ``i`` of sample ``n`` takes
whenever it is perturbed, an array of ``x``'s shape. A perturbed input is then
``h_n(S)_i = r_{n,i}`` for the entries ``i`` of the perturbed features ``S`` and ``x_{n,i}``
elsewhere. The imputers (``imputer``):

- a number ``c``: ``r_{n,i} = c``;
- ``"black"`` / ``"white"``: the sample's minimum / maximum over all its entries,
  ``r_{n,i} = min_j x_{n,j}`` / ``max_j x_{n,j}`` (Quantus's meaning);
- ``"mean"``: the unperturbed sample's mean over all its entries, ``r_{n,i} = mean_j x_{n,j}``.
  Quantus's ``"mean"`` is the mean of the *currently perturbed* array, which drifts as features
  are replaced; here it is fixed, so that every step removes the same information;
- ``"blur"``: a Gaussian blur of the sample, per channel over the spatial axes (axes ``2..`` of
  ``x (N, C, *spatial)``), standard deviation :data:`BLUR_SIGMA` pixels, with
  ``scipy.ndimage.gaussian_filter`` (``mode="reflect"``, the kernel cut at 4 sigma): the start
  of Petsiuk et al.'s (2018, RISE) insertion curve. RISE blurs with an 11 x 11 kernel of sigma 5
  and zero padding, which darkens the border; :func:`gaussian_blur` takes another ``sigma``;
- ``"uniform"``: draws from the uniform distribution on ``[0, 1)`` (Quantus's ``uniform_low``
  and ``uniform_high`` defaults), one per entry, from the metric's seeded generator ``rng``
  (Samek et al.'s region perturbation). Quantus 0.6.0's batched perturbation draws one value
  per sample and step instead, shared by all entries perturbed in that step; and other bounds:
  :func:`uniform_draws`;
- ``"noisy_linear"``: ROAD's noisy linear imputation (Rong et al. 2022,
  :func:`npxai.metrics.road.noisy_linear_imputation`, noise 0.01): each perturbed pixel the
  weighted mean of its neighbours given the kept ones, plus Gaussian noise. Its values depend on
  which entries are perturbed, so it is computed per perturbed input (a sparse solve each; the
  mask is the attribution's, ``(1 or C, H, W)`` per sample, images only);
- a callable ``imputer(x) -> array of x's shape`` (e.g.
  ``functools.partial(gaussian_blur, sigma=2.0)``), its result checked.

The named imputers are the entries of :data:`IMPUTERS`, ``name -> f(x, rng)`` (fixed values),
and of :data:`MASKED_IMPUTERS`, ``name -> f(x, mask, rng)`` (values that depend on the mask).
A metric reaches both through :func:`imputation`.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Real
from typing import Any

import numpy as np
from scipy import ndimage

from ..checks import shown
from .road import noisy_linear_imputation

#: The blur imputer's standard deviation in pixels (RISE's ``nsig``).
BLUR_SIGMA = 5.0


def gaussian_blur(x: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """``x (N, C, *spatial)`` blurred per sample and channel over the spatial axes with a
    Gaussian of standard deviation ``sigma`` pixels (``scipy.ndimage.gaussian_filter``,
    ``mode="reflect"``, truncated at 4 sigma), in float64."""
    if x.ndim < 3:
        raise ValueError(
            f"imputer 'blur' needs inputs (N, C, *spatial) with at least one spatial axis, got "
            f"shape {x.shape}"
        )
    sigmas = (0.0, 0.0) + (float(sigma),) * (x.ndim - 2)
    return ndimage.gaussian_filter(x.astype(np.float64), sigmas, mode="reflect")


def uniform_draws(
    x: np.ndarray, rng: np.random.Generator, low: float = 0.0, high: float = 1.0
) -> np.ndarray:
    """One draw from the uniform distribution on ``[low, high)`` per entry of ``x``."""
    return rng.uniform(low, high, size=x.shape)


def _per_sample(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.broadcast_to(values.reshape((len(x),) + (1,) * (x.ndim - 1)), x.shape)


def _sample_axes(x: np.ndarray) -> tuple[int, ...]:
    return tuple(range(1, x.ndim))


#: The named imputers, ``name -> f(x, rng) -> array of x's shape``.
IMPUTERS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "black": lambda x, rng: _per_sample(x.min(axis=_sample_axes(x)), x),
    "white": lambda x, rng: _per_sample(x.max(axis=_sample_axes(x)), x),
    "mean": lambda x, rng: _per_sample(x.mean(axis=_sample_axes(x), dtype=np.float64), x),
    "blur": lambda x, rng: gaussian_blur(x),
    "uniform": uniform_draws,
}


#: The named imputers whose values depend on which entries are perturbed, ``name -> f(x, mask,
#: rng) -> x`` with the entries under ``mask`` (True = perturbed) replaced.
MASKED_IMPUTERS: dict[str, Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]] = {
    "noisy_linear": noisy_linear_imputation,
}


def check_imputer(imputer: Any, owner: str) -> Any:
    """``imputer`` if it is a finite number, a name in :data:`IMPUTERS` or a callable, else
    ``ValueError`` naming ``imputer`` and the choices."""
    if isinstance(imputer, Real) and not isinstance(imputer, bool) and np.isfinite(imputer):
        return imputer
    names = (*IMPUTERS, *MASKED_IMPUTERS)
    if (isinstance(imputer, str) and imputer in names) or callable(imputer):
        return imputer
    raise ValueError(
        f"{owner}: imputer must be a finite number, one of {', '.join(map(repr, names))} or "
        f"a callable imputer(x) -> array of x's shape, got {shown(imputer)}"
    )


def replacement(x: np.ndarray, imputer: Any, rng: np.random.Generator, owner: str) -> np.ndarray:
    """The value each entry of ``x (N, *sample)`` takes when perturbed, an array of ``x``'s shape
    and dtype, for an imputer that :func:`check_imputer` accepted."""
    if isinstance(imputer, str):
        values = IMPUTERS[imputer](x, rng)
    elif callable(imputer):
        values = np.asarray(imputer(x))
        if values.shape != x.shape or values.dtype.kind not in "fiub":
            raise ValueError(
                f"{owner}: the imputer callable must return numbers of x's shape {x.shape}, got "
                f"{values.dtype} {values.shape}"
            )
        if not np.isfinite(values).all():
            raise ValueError(f"{owner}: the imputer callable returned NaN or infinite values")
    else:
        values = np.full(x.shape, imputer)
    return np.ascontiguousarray(values, dtype=x.dtype)


def imputation(
    x: np.ndarray, imputer: Any, rng: np.random.Generator, owner: str
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``impute(samples, mask)``: the perturbed inputs ``h`` of samples ``samples`` of ``x``
    (rows ``(R, *sample)``, ``x``'s dtype), the entries under ``mask`` (bool ``(R, *a)``, ``a``
    broadcasting to the sample shape) replaced as ``imputer`` (accepted by
    :func:`check_imputer`) says."""
    if isinstance(imputer, str) and imputer in MASKED_IMPUTERS:
        masked = MASKED_IMPUTERS[imputer]
        return lambda samples, mask: masked(x[samples], mask, rng)
    values = replacement(x, imputer, rng, owner)
    return lambda samples, mask: np.where(mask, values[samples], x[samples])
