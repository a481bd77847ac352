"""Compiled kernels, installed as ``npxai.kernels``.

``cpu/`` holds the Numba CPU kernels (``backend="numba"``), ``cuda/`` their numba.cuda twins
(``backend="cuda"``). Each operation family (``activation``, ``conv``, ``linear``, ``lrp``,
``norm``, ``pool``) has a file of the same name, and the same public functions (same signatures),
as its NumPy reference in ``npxai/reference/``; ``npxai.backend.backend_modules(backend)`` is
the table from a backend to its files. The other files are their helpers: ``cpu/winograd.py``
and ``cpu/scratch.py`` for the convolutions, ``cuda/arithmetic.py`` for :mod:`npxai.device` (the
operators NumPy gives host arrays).
"""
