"""Where the measured reference data lives when the user does not say (see
:mod:`workloads.reference_data`, the one place that searches)."""

from workloads.reference_data import (  # noqa: F401
    SOURCE_ROOT,
    reference_candidates,
    reference_dir,
    where_looked,
)
