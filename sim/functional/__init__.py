"""Functional mode: run an op on real data the way a device's mapping says the hardware does,
with its datatypes, and compare with the float64 reference kernels (see docs/numerics.md)."""
