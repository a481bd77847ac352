"""Peer libraries' LRP conventions, reproduced: build an npxai analyzer that computes what the peer
computes. Each module's docstring lists how that peer differs from npxai's defaults."""

from . import captum, julia, zennit

__all__ = ["captum", "julia", "zennit"]
