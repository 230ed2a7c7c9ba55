"""The error raised for bad workload input (model names, config.json files, scenarios)."""

from __future__ import annotations


class WorkloadError(ValueError):
    """Invalid workload input; ``str()`` is one line naming the file or option and the field."""

    def __init__(self, file: str, path: str, message: str):
        self.file = file
        self.path = path
        self.message = message
        where = ": ".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {message}" if where else message)
