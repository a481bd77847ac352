"""The NumPy reference: forward pass and input vector-Jacobian product of every layer.

One function per operation, plain NumPy, the formula in each docstring. Every compiled kernel of
npxai is tested against these functions, and these functions are tested against torch autograd.
Arrays are NCHW. The dtype of the input array is the dtype of the computation.
"""
