"""Design-space exploration: sweep specs, search strategies, executors, the result store and
Pareto analysis. Imports ``sim`` and below.

``load_sweep(path)`` validates a sweep YAML; ``run_sweep(spec, out)`` runs (or resumes) it into a
directory; ``load_results(out)`` returns every stored point as a pandas DataFrame;
``pareto_front``, ``sensitivity`` and ``best_points`` analyse it. See ``docs/dse.md``.
"""

from dse.analysis import best_points, knee_point, pareto_front, pareto_mask, sensitivity
from dse.runner import plan, run_sweep
from dse.spec import SweepSpec, load_sweep, sweep_from_dict
from dse.store import load_results, read_meta

__all__ = ["SweepSpec", "load_sweep", "sweep_from_dict", "run_sweep", "plan", "load_results",
           "read_meta", "pareto_front", "pareto_mask", "sensitivity", "best_points",
           "knee_point"]
