"""Reference kernels (numba) that define what each op computes, for checking the numerics of
the simulated hardware. Imports none of the other packages."""
