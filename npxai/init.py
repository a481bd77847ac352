"""Parameter initialisation as torch does it, from npxai's own seeded generator."""

import math

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator that initialises new layers' parameters (like ``torch.manual_seed``)."""
    global _generator
    _generator = np.random.default_rng(seed)


def uniform_fan_in(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` in float32: torch's default for Linear and Conv2d.

    (torch draws weights by ``kaiming_uniform_(a=sqrt(5))``, which has this same bound, and
    biases from the same interval.)
    """
    bound = np.float32(1 / math.sqrt(fan_in))
    unit = _generator.random(shape, dtype=np.float32)
    return (2 * bound) * unit - np.float32(bound)
