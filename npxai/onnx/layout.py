"""Where the batch is in an ONNX value: an exporter may move it (``(N, S, E) -> (S, N, E)``) or
merge it with another axis (an attention's heads, ``(N * H, S, d)``; its tokens, ``(S * N, E)``)
between two nodes that keep the samples apart. npxai's layers take the batch on axis 0, so the
importer holds such a value ``T`` as an npxai value ``X`` whose axis 0 is the batch and a
:class:`Layout`: ``T`` is ``X`` transposed and reshaped. A ``Transpose`` only changes the
layout; a ``Reshape`` changes it and may split axes of ``X`` (an npxai ``Reshape`` that keeps the
batch first); a node that needs an axis of ``T`` as an axis of its own, or the batch alone on
axis 0, gets ``X`` made so (``Permute`` and ``Reshape`` nodes, :meth:`Layout.canonical`) where
that is possible, and a :class:`~npxai.errors.LoadError` naming the node that moved or merged
the batch where it is not.

Where the file fixes the batch at 1, its axes do not say where the batch is (an axis of size 1
joins either neighbour): the batch then *floats*, in no axis of ``T`` (it is 1), and joins the
first axis where a node needs it there. npxai's layers never mix samples, so the graph computes
the file's function of one sample for each sample of a larger batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    """``T = X.transpose(order).reshape(...)``, ``T``'s axis ``j`` merging the next ``groups[j]``
    axes of that transposition (its members; none: an axis of size 1). ``X``'s axis 0 is the
    batch; where ``order`` does not hold it, a batch of 1 that floats (see the module).
    ``mixed``, where ``T`` does not have the batch alone on axis 0: the error naming the node
    that moved or merged it."""

    order: tuple[int, ...]
    groups: tuple[int, ...]
    mixed: str | None = None

    @classmethod
    def identity(cls, ndim: int) -> Layout:
        return cls(tuple(range(ndim)), (1,) * ndim)

    @property
    def is_identity(self) -> bool:
        return self.order == tuple(range(len(self.order))) and all(n == 1 for n in self.groups)

    def members(self) -> list[tuple[int, ...]]:
        """The axes of ``X`` that each axis of ``T`` merges, in ``T``'s memory order."""
        members, start = [], 0
        for n in self.groups:
            members.append(self.order[start : start + n])
            start += n
        return members

    def shape(self, x_shape: tuple[int, ...], batch: int | None = None) -> tuple[int, ...]:
        """``T``'s shape for ``X`` of ``x_shape`` (or for a batch of ``batch``)."""
        sizes = list(x_shape)
        if batch is not None:
            sizes[0] = batch
        return tuple(math.prod(sizes[a] for a in m) for m in self.members())

    def batch_axis(self) -> int | None:
        """The axis of ``T`` that holds the batch (``None``: it floats)."""
        return next((j for j, m in enumerate(self.members()) if 0 in m), None)

    def batch_first(self, x_shape: tuple[int, ...]) -> bool:
        """Whether ``T``'s axis 0 is the batch alone (but for axes of size 1), or is of size 1
        where the batch floats."""
        if not self.groups:
            return False
        first = self.members()[0]
        if 0 not in self.order:
            return all(x_shape[a] == 1 for a in first)
        return 0 in first and all(a == 0 or x_shape[a] == 1 for a in first)

    def transpose(self, perm: list[int]) -> Layout:
        members = self.members()
        return Layout(tuple(a for j in perm for a in members[j]),
                      tuple(len(members[j]) for j in perm), self.mixed)  # fmt: skip

    def example(self, x: np.ndarray) -> np.ndarray:
        """``T``'s values for ``X = x``."""
        order = self.order if 0 in self.order else (0, *self.order)
        return x.transpose(order).reshape(self.shape(x.shape))

    def canonical(
        self, x_shape: tuple[int, ...]
    ) -> tuple[tuple[int, ...], tuple[int, ...], Layout]:
        """``(perm, shape, layout)``: ``X.transpose(perm).reshape(shape)`` holds ``T`` with each
        axis of ``T`` one axis of its own but for the batch's (the batch, and what the batch's axis
        merges before and after it), in ``T``'s order after the batch; ``layout`` is its layout.
        A floating batch takes ``T``'s axis 0 where that is of size 1."""
        perm = (0, *(a for a in self.order if a != 0))
        shape, order, groups = [x_shape[0]], [], []
        floats = 0 not in self.order
        for j, members in enumerate(self.members()):
            if floats and j == 0 and all(x_shape[a] == 1 for a in members):
                order.append(0)
                groups.append(1)
                continue
            if 0 not in members:
                order.append(len(shape))
                shape.append(math.prod(x_shape[a] for a in members))
                groups.append(1)
                continue
            i, count = members.index(0), 0
            for run in (members[:i], None, members[i + 1 :]):
                if run is None:
                    order.append(0)
                    count += 1
                elif math.prod(x_shape[a] for a in run) > 1:
                    order.append(len(shape))
                    shape.append(math.prod(x_shape[a] for a in run))
                    count += 1
            groups.append(count)
        return perm, tuple(shape), Layout(tuple(order), tuple(groups), self.mixed)


def regroup(
    layout: Layout,
    x_shape: tuple[int, ...],
    target: tuple[int, ...],
    batch_dim: int | None,
    free: bool = False,
) -> tuple[tuple[int, ...], Layout]:
    """``T`` reshaped to ``target``: ``(shape, layout)`` where ``X.reshape(shape)`` (axes of ``X``
    split, the batch kept first and whole) holds it with ``layout``. ``batch_dim`` is the axis of
    ``target`` that holds the batch where the importer knows it (the dim that follows the batch
    size), ``None`` where it is to be found from the sizes; ``free``: the batch is 1, fixed by the
    file, and floats in the result. Raises ``ValueError`` saying why the target is not ``T``'s
    axes merged or split."""
    floats = free or 0 not in layout.order
    order = [a for a in layout.order if a != 0] if floats else list(layout.order)
    sizes = [x_shape[a] for a in order]  # T's memory order
    batch = None if floats else order.index(0)
    if batch is not None:
        before = math.prod(sizes[:batch])
        bounds = [math.prod(target[:j]) for j in range(len(target) + 1)]
        if batch_dim is None:
            batch_dim = _batch_dim(bounds, before, sizes[batch], target)
        if not (0 <= batch_dim < len(target) and before % bounds[batch_dim] == 0
                and bounds[batch_dim + 1] % (before * sizes[batch]) == 0):  # fmt: skip
            raise ValueError(f"the batch cannot be in axis {batch_dim} of the target")
    j, need = 0, target[0] if target else 1
    pieces: list[list[int]] = []
    owners: list[list[int]] = []
    for k, size in enumerate(sizes):
        if k == batch:
            while j < batch_dim:
                j, need = _advance(j, need, target)
            pieces.append([size])
            owners.append([j])
            need //= size
            continue
        part, own = [], []
        while size > 1:
            while (need == 1 and j + 1 < len(target)
                   and (batch is None or k > batch or j < batch_dim)):  # fmt: skip
                j, need = _advance(j, need, target)
            if need % size == 0:
                part.append(size)
                need, size = need // size, 1
            elif size % need == 0 and need > 1:
                part.append(need)
                size, need = size // need, 1
            else:
                raise ValueError("the target's axes are not the input's merged or split")
            own.append(j)
        pieces.append(part or [1])
        owners.append(own or [j])
    while j + 1 < len(target):
        j, need = _advance(j, need, target)
    if need != 1:
        raise ValueError("the target's axes are not the input's merged or split")
    position = {a: k for k, a in enumerate(order)}
    shape: list[int] = []
    index: dict[int, list[int]] = {}
    for a in range(len(x_shape)):
        parts = pieces[position[a]] if a in position else [x_shape[a]]
        index[a] = list(range(len(shape), len(shape) + len(parts)))
        shape.extend(parts)
    flat = [o for own in owners for o in own]
    groups = tuple(flat.count(j) for j in range(len(target)))
    return tuple(shape), Layout(tuple(i for a in order for i in index[a]), groups, layout.mixed)


def _advance(j: int, need: int, target: tuple[int, ...]) -> tuple[int, int]:
    if need != 1 or j + 1 >= len(target):
        raise ValueError("the target's axes are not the input's merged or split")
    return j + 1, target[j + 1]


def _batch_dim(bounds: list[int], before: int, batch: int, target: tuple[int, ...]) -> int:
    """The target axis that can hold the batch (``before`` elements before it, in ``T``'s memory
    order): the one whose range holds it; for a batch of 1 between two axes, an axis of size 1
    there (the batch alone), else a ``ValueError``: a target that does not grow with the batch
    does not say which of the two it joins."""
    candidates = [j for j in range(len(target))
                  if bounds[j] <= before and before * batch <= bounds[j + 1]]  # fmt: skip
    if not candidates:
        raise ValueError("the target splits the batch")
    if len(candidates) == 1:
        return candidates[0]
    alone = [j for j in candidates if target[j] == 1]
    if alone:
        return alone[0]
    raise ValueError(
        f"the batch (1 in the example) could join axis {candidates[0]} or {candidates[1]} of the "
        "target, which does not grow with the batch (a constant shape, not computed from the "
        "input's)"
    )
