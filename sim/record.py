"""What a run needs to be rerun bit for bit, as plain data for ``summary.json``.

:func:`run_record` captures the *resolved* inputs - the arch after ``extends`` and overrides
(``Arch.to_dict()`` as YAML text, every value with its source), the model config (JSON), the
full scenario, the policies, the placement spec, fidelity, seed and version - so that a run of
a custom arch file or a Hugging Face ``config.json`` reruns from the summary alone, even where
the file is gone. :func:`load_record` turns it back into the objects :func:`sim.run.simulate`
takes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from arch import Arch
from arch.preset_cache import dump_cached
from arch.schema import BuildContext, build_any, dump
from arch.spec import SECTIONS, arch_from_dict
from workloads.models import ModelConfig
from workloads.scenario import Scenario

#: bump when the record's layout changes
RECORD_FORMAT = 1


def arch_yaml(data: dict[str, Any]) -> str:
    """The record's arch YAML: what ``yaml.safe_dump(data, sort_keys=False,
    allow_unicode=True)`` writes, by libyaml's emitter when PyYAML has it (the same text on
    every preset, tests/test_startup_imports.py, in ~1/6 of the CPU: 5 vs 33 ms for h100)."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True)


def run_record(arch: Arch, model: ModelConfig, scenario: Scenario, *, fidelity: str, seed: int,
               placement: Any = None, policies: Any = None, mode: str = "inference",
               training: Any = None, version: str = "") -> dict[str, Any]:
    """The resolved inputs of one run (see the module docstring)."""
    return {
        "format": RECORD_FORMAT, "mode": mode, "fidelity": fidelity, "seed": seed,
        "version": version,
        # memoised by content (arch.preset_cache): a run of a known arch needs no PyYAML
        "arch_yaml": dump_cached("record-arch", arch.to_dict(), arch_yaml),
        "model_config": dataclasses.asdict(model),
        "scenario": dataclasses.asdict(scenario),
        "policies": dataclasses.asdict(policies) if policies is not None else None,
        "placement": dump(placement) if placement is not None else None,
        "training": dataclasses.asdict(training) if training is not None else None,
    }


def load_record(rec: dict[str, Any], file: str = "summary.json") -> dict[str, Any]:
    """``arch``, ``model``, ``scenario``, ``placement`` (or None) and the plain ``policies``,
    ``training``, ``fidelity``, ``seed``, ``mode`` of a :func:`run_record`."""
    import yaml

    arch = arch_from_dict(yaml.safe_load(rec["arch_yaml"]), file=f"{file}: arch_yaml")
    placement = None
    if rec.get("placement") is not None:
        placement = build_any(SECTIONS["placement"], rec["placement"],
                              BuildContext(file=f"{file}: placement"), "placement")
    return {"arch": arch, "model": ModelConfig(**rec["model_config"]),
            "scenario": Scenario(**rec["scenario"]), "placement": placement,
            "policies": rec.get("policies"), "training": rec.get("training"),
            "fidelity": rec["fidelity"], "seed": int(rec["seed"]), "mode": rec.get("mode",
                                                                                   "inference")}
