"""Check: random several-stream runs give the same tables on the arrays path and op by op.

Usage: python benchmarks/sweep_equivalence.py [--seed N] [--configs N]

Draws configurations (architecture, model, TP, PP, micro-batches, EP on MoE models,
``--overlap``) and runs each twice: as a user's run does (planned from arrays, run by
sim/engine_arrays.py) and with ``sim.system.schedule.PLAN_FROM_ARRAYS = False`` (the op-by-op
plan and engine, the reference). The op table and the resource table must be equal bit for
bit; an input either path refuses must be refused by both with the same message. Prints a
line per configuration (engine events on both paths) and a summary; exits 1 on any
difference. Too slow for the default test suite (about 2 s a configuration).
"""

from __future__ import annotations

import argparse
import random
import sys

ARCHS = ("dgx-h100", "dgx-a100", "dgx-h100x2", "dgx-a100x2-vidur")
MODELS = ("llama2-7b", "llama2-13b", "llama2-70b", "mixtral-8x7b", "mistral-7b", "opt-6.7b")


def _run(arch: str, model: str, scenario: dict, overlap: bool, from_arrays: bool):
    """(result, None) or (None, the error's message)."""
    import sim.system.schedule as schedule
    from arch import load_arch
    from sim.run import simulate
    from sim.system.schedule import Policies
    from workloads.models import get_model
    from workloads.scenario import Scenario

    schedule.PLAN_FROM_ARRAYS = from_arrays
    try:
        return simulate(load_arch(arch), get_model(model), Scenario(**scenario),
                        policies=Policies(overlap=overlap)), None
    except Exception as exc:   # noqa: BLE001 - both paths must refuse alike
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        schedule.PLAN_FROM_ARRAYS = True


def draw(rng: random.Random) -> tuple[str, str, dict, bool]:
    """One random configuration."""
    model = rng.choice(MODELS)
    tp = rng.choice([1, 2, 4, 8])
    scenario = {"batch": rng.choice([4, 8]), "prompt_len": rng.choice([16, 64]),
                "gen_len": rng.choice([16, 24, 40]), "tp": tp, "pp": rng.choice([1, 2, 4]),
                "microbatches": rng.choice([1, 2, 4])}
    if model.startswith("mixtral") and rng.random() < 0.5:
        scenario["ep"] = tp
    return rng.choice(ARCHS), model, scenario, rng.random() < 0.6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--configs", type=int, default=50)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    same = refused = differ = 0
    for k in range(args.configs):
        arch, model, scenario, overlap = draw(rng)
        new, new_err = _run(arch, model, scenario, overlap, True)
        old, old_err = _run(arch, model, scenario, overlap, False)
        label = f"{k} {arch} {model} {scenario} overlap={overlap}"
        if new is None or old is None:
            ok = new_err == old_err
            refused += ok
            differ += not ok
            print(f"{label}: refused" + ("" if ok else f" DIFFERS: {new_err!r} / {old_err!r}"))
            continue
        ok = list(new.ops.columns) == list(old.ops.columns) and \
            all(new.ops[c].equals(old.ops[c]) for c in new.ops.columns) and \
            new.resources.equals(old.resources)
        same += ok
        differ += not ok
        print(f"{label}: engine events {new.metrics['engine_events']:.0f} / "
              f"{old.metrics['engine_events']:.0f}" + ("" if ok else " DIFFERS"), flush=True)
    print(f"seed {args.seed}: {same} equal, {refused} refused alike, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
