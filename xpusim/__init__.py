"""xpusim: event-driven hardware simulator and design-space explorer for transformer workloads.

This package is the command-line layer; the work happens in ``arch``, ``workloads``,
``mappings``, ``sim``, ``dse`` and ``kernels_ref``.
"""

__version__ = "0.1.0"
