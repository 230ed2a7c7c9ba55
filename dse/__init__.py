"""Design-space exploration: sweep specs, search strategies, executors, the result store and
Pareto analysis. Imports ``sim`` and below."""
