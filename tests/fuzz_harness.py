"""Hostile-input fuzzing of the ``xpusim`` CLI: input generators and the properties every run
must keep (issue 19). Used by ``tests/test_fuzz_inputs.py`` (short profile, hypothesis) and
``benchmarks/fuzz_inputs.py`` (long profile, >= 10,000 inputs in worker processes).

A *case* is a CLI argument list plus the files it reads, made from a ``random.Random`` (under
hypothesis, ``st.randoms()``: every draw is recorded, so failures shrink). Five campaigns mutate
what users hand the CLI: arch YAML (every preset), sweep specs (``examples/sweeps``),
Hugging Face ``config.json`` families, command-line arguments at their extremes, and the data
files commands read (serving traces, prompt lengths, expert counts, peer tools' inputs).

Properties of one CLI call (:func:`run_case`): exit 0 or 2 (``check`` may exit 1, its numerics
verdict); no exception escapes ``main``; stderr holds one-line messages only: on exit 2 exactly
one ``xpusim: error: ...`` line, last, after at most three one-line warnings (an emulated dtype, a
context beyond the trained one); it ends within the time bound and the memory bound; every
number in every JSON it prints or writes (``--json``, ``summary.json``) is finite.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import random
import resource
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SWEEP_EXAMPLES = sorted((ROOT / "examples" / "sweeps").glob("*.yaml"))
SMALL_RUN = ["--model", "gpt2-small", "--batch", "1", "--prompt", "16", "--gen", "2"]

# --- hostile values ---------------------------------------------------------------------------
HUGE_INTS = [0, -1, 1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1,
             10**400, 7, 1024, 3]
FLOATS = [0.0, -0.0, 1e-300, 5e-324, 1e308, -1e308, 1e-9, 0.5, 1.5, 3.14, 1e15, 1e-15]
TEXTS = ["", " ", "nan", ".nan", "inf", "-inf", ".inf", "1 nHz", "1e-300 B/s", "1e308 J/FLOP",
         "1e300 s", "2^63", "1e16", "3.35 TB/s", "80 GiB", "1.41 GHz", "1 pJ/bit", "0 W", "-5 GB/s",
         "1\n2 GHz", "a\x01b", "\u2028", "x" * 5000, "fp8", "fp16", "int4", "/etc/passwd",
         "../../../etc/shadow", "h100", "a100.yaml", "{value: 1}", "null", "é漢字",
         "1e999 Hz", "1 GHz GHz", "  7  ", "0x10", "1_000", "1e-400 s"]
OTHER = [None, True, False, [], {}, [1, 2], {"value": 1}, {"value": None, "source": 3},
         {"a": {"b": {"c": 1}}}, [[1, 2], [3]], {"min": 1, "max": 2}]
EXPRESSIONS = ["(-8) ** (1/3)", "1e308 * 10", "-" * 999 + "1", "1/0", "0/0", "sqrt(-1)",
               "log(0)", "exp(1000)", "2 ** 1024", "99999999999 * 99999999999 * 99999999999",
               "round(1e300 * 1e10)", "min()", "max(1)", "abs(-3)", "x.__class__", "__import__",
               "gpu.sm_count ** 0.5", "floor(1e400)", "1 if 0 else 2", "(" * 300 + "1" +
               ")" * 300, "'a'", "lambda: 1", "[1][0]", "1 < 2 < 3", "not 0", "ceil(-0.5)"]


def hostile(rnd: random.Random) -> Any:
    """One hostile scalar or small structure."""
    pool = rnd.choice((HUGE_INTS, FLOATS, TEXTS, OTHER))
    value = rnd.choice(pool)
    if pool is FLOATS and rnd.random() < 0.3:
        value = value * rnd.choice((-1, 10, 1e-10, 1e100))
    return copy.deepcopy(value)


def deep(rnd: random.Random, depth: int | None = None) -> Any:
    """A deeply nested list or mapping (past the loaders' 64 levels most of the time)."""
    depth = depth or rnd.choice((10, 63, 65, 200, 3000))
    node: Any = 1
    for _ in range(depth):
        node = [node] if rnd.random() < 0.5 else {"k": node}
    return node


def alias_bomb(width: int = 9, levels: int = 7) -> str:
    """YAML "billion laughs": ``levels`` anchors, each a list of ``width`` of the previous."""
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


# --- structure mutation ------------------------------------------------------------------------
def _paths(node: Any, max_depth: int = 24) -> list[tuple]:
    """Paths of every node (iterative; not below ``max_depth``: deep trees stay cheap)."""
    out: list[tuple] = []
    stack: list[tuple[Any, tuple]] = [(node, ())]
    while stack:
        cur, prefix = stack.pop()
        out.append(prefix)
        if len(prefix) >= max_depth:
            continue
        if isinstance(cur, dict):
            stack.extend((v, (*prefix, k)) for k, v in cur.items())
        elif isinstance(cur, list):
            stack.extend((v, (*prefix, i)) for i, v in enumerate(cur))
    return out[::-1]


def _set(root: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    node = root
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return root


def _delete(root: Any, path: tuple) -> Any:
    if not path:
        return root
    node = root
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return root


SCALES = (0.0, 1e-6, 1e-3, 0.1, 0.5, 2, 10, 1e3, 1e6, 1e12, -1)


def scale(rnd: random.Random, value: Any) -> Any:
    """``value`` (a number or a quantity text such as ``3.35 TB/s``) times a random factor:
    inputs that stay well-formed but reach the extremes of what the models accept."""
    factor = rnd.choice(SCALES)
    if isinstance(value, bool):
        return value
    try:
        if isinstance(value, int):
            return int(value * factor)
        if isinstance(value, float):
            return value * factor
    except OverflowError:  # a huge integer drawn earlier: keep it
        return value
    if isinstance(value, str):
        head, _, unit = value.partition(" ")
        try:
            return f"{float(head) * factor:g} {unit}".strip()
        except ValueError:
            return value
    if isinstance(value, dict) and "value" in value:
        return {**value, "value": scale(rnd, value["value"])}
    return value


def mutate_tree(rnd: random.Random, data: Any, n: int | None = None) -> Any:
    """Apply 1-3 random mutations (rescale a number, replace, delete, add a key, nest deeply)
    to parsed data."""
    data = copy.deepcopy(data)
    for _ in range(n or rnd.randint(1, 3)):
        paths = _paths(data)
        path = rnd.choice(paths)
        op = rnd.random()
        if op < 0.5:
            data = _set(data, path, scale(rnd, _get(data, path)))
        elif op < 0.75:
            data = _set(data, path, hostile(rnd))
        elif op < 0.82 and path:
            data = _delete(data, path)
        elif op < 0.93:
            target = _get(data, path)
            if isinstance(target, dict):
                target[rnd.choice(("zz_unknown", "source", "note", "value", "extends", 7))] = \
                    hostile(rnd)
            else:
                data = _set(data, path, hostile(rnd))
        else:
            data = _set(data, path, deep(rnd))
    return data


def _is_number(node: Any) -> bool:
    if isinstance(node, dict) and "value" in node:
        node = node["value"]
    if isinstance(node, str):
        head = node.partition(" ")[0]
        try:
            float(head)
        except ValueError:
            return False
        return True
    return isinstance(node, (int, float)) and not isinstance(node, bool)


def _get(root: Any, path: tuple) -> Any:
    for key in path:
        root = root[key]
    return root


def mutate_text(rnd: random.Random, text: str) -> str:
    """Text-level mutations a parser must survive: duplicate keys, alias bombs, control
    characters, truncation, tabs, stray quotes."""
    lines = text.splitlines()
    op = rnd.random()
    if op < 0.2 and lines:
        i = rnd.randrange(len(lines))
        lines.insert(i, lines[i])  # a duplicate key (or list item)
    elif op < 0.35:
        lines.append("bomb:\n  " + alias_bomb(9, rnd.choice((3, 7, 9))).replace("\n", "\n  "))
    elif op < 0.5 and lines:
        i = rnd.randrange(len(lines))
        lines[i] = lines[i] + rnd.choice(("\x01", "\x00", "\t", "'", '"', ": :", " &a", " *b",
                                          " !!python/object:os.system", "\ufeff", "\x85"))
    elif op < 0.6:
        return text[: rnd.randrange(len(text) + 1)]
    elif op < 0.7:
        lines.append("a: &a [*a]")
    else:
        return text
    return "\n".join(lines) + "\n"


def _dump(data: Any) -> str:
    """YAML of ``data``; a flow-style text when it is too deep for the emitter."""
    try:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10**9)
    except (yaml.YAMLError, RecursionError, ValueError, TypeError):
        return _flow(data) + "\n"


def _flow(data: Any) -> str:
    """JSON-like flow text of any tree, iteratively (YAML reads it)."""
    parts: list[str] = []
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            parts.append(item.text)
        elif isinstance(item, dict):
            stack.append(_Raw("}"))
            for i, (k, v) in enumerate(reversed(list(item.items()))):
                stack.append(v)
                stack.append(_Raw(f"{json.dumps(str(k))}: "))
                if i < len(item) - 1:
                    stack.append(_Raw(", "))
            stack.append(_Raw("{"))
        elif isinstance(item, list):
            stack.append(_Raw("]"))
            for i, v in enumerate(reversed(item)):
                stack.append(v)
                if i < len(item) - 1:
                    stack.append(_Raw(", "))
            stack.append(_Raw("["))
        else:
            parts.append(json.dumps(item, default=str) if not isinstance(item, int)
                         else str(item))
    return "".join(parts)


@dataclass
class _Raw:
    text: str


# --- cases -----------------------------------------------------------------------------------
@dataclass
class Case:
    """One CLI call: ``argv`` with ``{dir}`` standing for the case's folder, and its files."""

    campaign: str
    argv: list[str]
    files: dict[str, str] = field(default_factory=dict)

    def materialise(self, folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        return [a.replace("{dir}", str(folder)) for a in self.argv]


def _preset_data(name: str) -> Any:
    from arch import PRESET_DIR

    return yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())


def arch_case(rnd: random.Random) -> Case:
    """A preset, mutated (or an ``extends`` file over it), validated or run."""
    from arch import list_presets

    preset = rnd.choice(list_presets())
    r = rnd.random()
    if r < 0.3:  # well-formed but extreme: one or two numbers of a runnable preset rescaled
        preset = rnd.choice([p for p in list_presets() if not p.startswith("dram-")])
        data = _preset_data(preset)
        numeric = [p for p in _paths(data) if _is_number(_get(data, p))]
        for path in rnd.sample(numeric, min(len(numeric), rnd.randint(1, 2))):
            data = _set(data, path, scale(rnd, _get(data, path)))
        argv = ["run", "--arch", "{dir}/arch.yaml", *SMALL_RUN, "--json"]
        if rnd.random() < 0.3:
            argv += ["--fidelity", rnd.choice(("roofline", "tile", "cycle"))]
        return Case("arch", argv, {"arch.yaml": _dump(data)})
    if r < 0.55:
        text = _dump(mutate_tree(rnd, _preset_data(preset)))
    elif r < 0.8:  # a small override of a preset: the common user file
        section = rnd.choice(("gpu", "memory", "energy", "npu", "pim", "dram", "system",
                              "interconnect", "software"))
        over = mutate_tree(rnd, {"extends": preset, section: {"x": 1}}, 1)
        data = _preset_data(preset)
        if rnd.random() < 0.8 and isinstance(data.get(section), dict):
            paths = [p for p in _paths(data[section]) if p]
            if paths:
                path = rnd.choice(paths)
                over = {"extends": preset}
                node: dict = over.setdefault(section, {})
                for key in path[:-1]:
                    node = node.setdefault(key, {}) if isinstance(key, str) else node
                node[path[-1] if isinstance(path[-1], str) else "x"] = hostile(rnd)
        text = _dump(over)
    else:
        text = mutate_text(rnd, (ROOT / "arch" / "presets" / f"{preset}.yaml").read_text())
    files = {"arch.yaml": text}
    extra = rnd.random()
    if extra < 0.1:
        files["arch.yaml"] = rnd.choice((
            "extends: ../c/arch.yaml\n", "extends: arch.yaml\nname: a\n",
            "extends: /etc/passwd\n", "extends: b.yaml\n",
            f"extends: {'../' * 40}etc/hosts.yaml\n"))
        files["b.yaml"] = rnd.choice(("extends: arch.yaml\n", "- 1\n", "x: [\n",
                                      "extends: h100\n"))
    if rnd.random() < 0.3:
        return Case("arch", ["run", "--arch", "{dir}/arch.yaml", *SMALL_RUN, "--json"], files)
    return Case("arch", ["arch", "validate", "{dir}/arch.yaml"], files)


def _small_sweep(rnd: random.Random, data: dict) -> dict:
    """Shrink a sweep so a real run takes seconds: two values per axis, a small workload."""
    axes = data.get("axes")
    if isinstance(axes, dict):
        for k, v in list(axes.items()):
            if isinstance(v, list):
                axes[k] = v[:2]
            elif isinstance(v, dict) and "steps" in v:
                v["steps"] = min(v["steps"], 2) if isinstance(v["steps"], int) else v["steps"]
    data["workloads"] = [{"model": "gpt2-small", "batch": 1, "prompt_len": 16, "gen_len": 2}]
    return data


def sweep_case(rnd: random.Random) -> Case:
    """An example sweep, mutated; ``--dry-run`` mostly, a shrunk real run sometimes."""
    path = rnd.choice(SWEEP_EXAMPLES)
    data = yaml.safe_load(path.read_text())
    real = rnd.random() < 0.15
    r = rnd.random()
    if r < 0.4:
        data = mutate_tree(rnd, data)
    elif r < 0.7:  # hostile expressions, sizes and strategies
        field_ = rnd.choice(("derived", "metrics", "constraints", "strategy", "axes"))
        if field_ == "derived":
            data["derived"] = {rnd.choice(("free_x", "gpu.clock", "npu.clock", "scenario.batch")):
                               rnd.choice(EXPRESSIONS)}
        elif field_ == "metrics":
            data["metrics"] = {"m": rnd.choice(EXPRESSIONS)}
        elif field_ == "constraints":
            data["constraints"] = [rnd.choice(EXPRESSIONS)]
        elif field_ == "strategy":
            data["strategy"] = {"name": rnd.choice(("grid", "random", "lhs", "nsga2", "bayes")),
                                rnd.choice(("samples", "population", "generations", "batch",
                                            "candidates")): hostile(rnd)}
        else:
            axes = data.get("axes") or {}
            key = rnd.choice(list(axes) or ["scenario.batch"])
            axes[key] = rnd.choice(({"min": 1, "max": hostile(rnd), "steps": hostile(rnd)},
                                    [hostile(rnd), hostile(rnd)], hostile(rnd)))
            data["axes"] = axes
    if real:
        data = _small_sweep(rnd, data) if isinstance(data, dict) else data
    text = _dump(data)
    if r >= 0.85:
        text = mutate_text(rnd, text if real else path.read_text())
    files = {"sweep.yaml": text}
    if real:
        return Case("sweep", ["sweep", "{dir}/sweep.yaml", "--out", "{dir}/out", "--json",
                              "--no-report"], files)
    return Case("sweep", ["sweep", "{dir}/sweep.yaml", "--dry-run", "--json"], files)


FAMILIES: dict[str, dict[str, Any]] = {
    "llama": {"model_type": "llama", "num_attention_heads": 8, "num_key_value_heads": 4,
              "hidden_size": 512, "num_hidden_layers": 2, "intermediate_size": 1376,
              "vocab_size": 32000, "max_position_embeddings": 2048, "hidden_act": "silu"},
    "mixtral": {"model_type": "mixtral", "num_attention_heads": 8, "num_key_value_heads": 2,
                "hidden_size": 512, "num_hidden_layers": 2, "intermediate_size": 1024,
                "vocab_size": 32000, "num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen2": {"model_type": "qwen2", "num_attention_heads": 8, "hidden_size": 512,
              "num_hidden_layers": 2, "intermediate_size": 1024, "vocab_size": 32000},
    "gpt2": {"model_type": "gpt2", "n_embd": 256, "n_layer": 2, "n_head": 4, "vocab_size": 50257,
             "n_positions": 1024},
    "opt": {"model_type": "opt", "num_attention_heads": 4, "hidden_size": 256,
            "num_hidden_layers": 2, "ffn_dim": 1024, "vocab_size": 50272,
            "max_position_embeddings": 2048, "activation_function": "relu"},
    "bloom": {"model_type": "bloom", "hidden_size": 256, "n_head": 4, "n_layer": 2,
              "vocab_size": 250880},
    "gpt_neox": {"model_type": "gpt_neox", "num_attention_heads": 4, "hidden_size": 256,
                 "num_hidden_layers": 2, "intermediate_size": 1024, "vocab_size": 50432,
                 "max_position_embeddings": 2048},
    "gpt_oss": {"model_type": "gpt_oss", "num_attention_heads": 8, "num_key_value_heads": 2,
                "head_dim": 64, "hidden_size": 256, "num_hidden_layers": 2,
                "intermediate_size": 256, "vocab_size": 1000, "num_local_experts": 4,
                "num_experts_per_tok": 2, "sliding_window": 128, "attention_bias": True,
                "layer_types": ["sliding_attention", "full_attention"]},
    "cohere2": {"model_type": "cohere2", "num_attention_heads": 4, "hidden_size": 256,
                "num_hidden_layers": 4, "intermediate_size": 512, "vocab_size": 1000,
                "sliding_window": 64, "sliding_window_pattern": 4},
    "nemotron": {"model_type": "nemotron", "num_attention_heads": 4, "hidden_size": 256,
                 "num_hidden_layers": 2, "intermediate_size": 512, "vocab_size": 1000,
                 "hidden_act": "relu2", "partial_rotary_factor": 0.5},
    "deepseek_v32": {"model_type": "deepseek_v32", "num_attention_heads": 4,
                     "hidden_size": 256, "num_hidden_layers": 2, "intermediate_size": 512,
                     "moe_intermediate_size": 64, "n_routed_experts": 4,
                     "num_experts_per_tok": 2, "first_k_dense_replace": 1,
                     "q_lora_rank": 64, "kv_lora_rank": 64, "qk_nope_head_dim": 32,
                     "qk_rope_head_dim": 16, "v_head_dim": 32, "vocab_size": 1000,
                     "index_n_heads": 4, "index_head_dim": 32, "index_topk": 16},
    "granitemoehybrid": {"model_type": "granitemoehybrid", "num_attention_heads": 4,
                         "num_key_value_heads": 2, "hidden_size": 256, "num_hidden_layers": 3,
                         "intermediate_size": 128, "shared_intermediate_size": 256,
                         "num_local_experts": 4, "num_experts_per_tok": 2, "vocab_size": 1000,
                         "mamba_n_heads": 8, "mamba_d_head": 64, "mamba_d_state": 16,
                         "layer_types": ["mamba", "attention", "mamba"]},
    "nemotron_h": {"model_type": "nemotron_h", "num_attention_heads": 4, "num_key_value_heads": 2,
                   "hidden_size": 256, "num_hidden_layers": 4, "intermediate_size": 256,
                   "hybrid_override_pattern": "M-M*", "mamba_num_heads": 8,
                   "mamba_head_dim": 32, "ssm_state_size": 16, "n_groups": 2,
                   "vocab_size": 1000},
    "qwen3_next": {"model_type": "qwen3_next", "num_attention_heads": 4, "num_key_value_heads": 2,
                   "hidden_size": 256, "num_hidden_layers": 4, "head_dim": 64,
                   "intermediate_size": 256, "num_experts": 4, "num_experts_per_tok": 2,
                   "moe_intermediate_size": 64, "shared_expert_intermediate_size": 64,
                   "linear_num_key_heads": 2, "linear_num_value_heads": 4,
                   "linear_key_head_dim": 32, "linear_value_head_dim": 32, "vocab_size": 1000},
    "bamba": {"model_type": "bamba", "num_attention_heads": 4, "num_key_value_heads": 2,
              "hidden_size": 256, "num_hidden_layers": 3, "intermediate_size": 256,
              "attn_layer_indices": [1], "mamba_n_heads": 8, "mamba_d_head": 64,
              "mamba_d_state": 16, "vocab_size": 1000},
    "mamba2": {"model_type": "mamba2", "hidden_size": 256, "num_hidden_layers": 2,
               "num_heads": 8, "head_dim": 64, "state_size": 16, "n_groups": 2,
               "vocab_size": 1000},
    "jamba": {"model_type": "jamba", "num_attention_heads": 4, "num_key_value_heads": 2,
              "hidden_size": 256, "num_hidden_layers": 4, "intermediate_size": 256,
              "attn_layer_period": 4, "attn_layer_offset": 2, "num_experts": 4,
              "num_experts_per_tok": 2, "mamba_d_state": 8, "vocab_size": 1000},
    "falcon_h1": {"model_type": "falcon_h1", "num_attention_heads": 4, "num_key_value_heads": 2,
                  "head_dim": 64, "hidden_size": 256, "num_hidden_layers": 2,
                  "intermediate_size": 256, "mamba_d_ssm": 256, "mamba_n_heads": 4,
                  "mamba_d_head": 64, "mamba_d_state": 16, "vocab_size": 1000},
    "falcon_mamba": {"model_type": "falcon_mamba", "hidden_size": 256, "num_hidden_layers": 2,
                     "intermediate_size": 512, "state_size": 8, "time_step_rank": 16,
                     "vocab_size": 1000},
    "glm4": {"model_type": "glm4", "num_attention_heads": 4, "num_key_value_heads": 2,
             "hidden_size": 256, "num_hidden_layers": 2, "intermediate_size": 512,
             "vocab_size": 1000, "partial_rotary_factor": 0.5},
    "stablelm": {"model_type": "stablelm", "num_attention_heads": 4, "num_key_value_heads": 2,
                 "hidden_size": 256, "num_hidden_layers": 2, "intermediate_size": 512,
                 "vocab_size": 1000, "qk_layernorm": True, "use_parallel_residual": True},
    "mpt": {"model_type": "mpt", "d_model": 256, "n_heads": 4, "n_layers": 2,
            "vocab_size": 1000, "attn_config": {"alibi": True, "clip_qkv": 6}},
    "exaone4": {"model_type": "exaone4", "num_attention_heads": 4, "num_key_value_heads": 2,
                "hidden_size": 256, "num_hidden_layers": 4, "intermediate_size": 512,
                "vocab_size": 1000, "sliding_window": 64, "sliding_window_pattern": "LLLG"},
    "hunyuan_v1_moe": {"model_type": "hunyuan_v1_moe", "num_attention_heads": 4,
                       "num_key_value_heads": 2, "hidden_size": 256, "num_hidden_layers": 2,
                       "intermediate_size": 128, "num_experts": 4, "moe_topk": [2, 2],
                       "num_shared_expert": [1, 1], "vocab_size": 1000},
    "bailing_moe": {"model_type": "bailing_moe", "num_attention_heads": 4,
                    "num_key_value_heads": 2, "hidden_size": 256, "num_hidden_layers": 2,
                    "intermediate_size": 512, "moe_intermediate_size": 64, "num_experts": 4,
                    "num_experts_per_tok": 2, "num_shared_experts": 1,
                    "first_k_dense_replace": 1, "use_qk_norm": True, "vocab_size": 1000},
    "lfm2": {"model_type": "lfm2", "num_attention_heads": 4, "num_key_value_heads": 2,
             "hidden_size": 256, "num_hidden_layers": 3, "block_ff_dim": 768,
             "full_attn_idxs": [1], "conv_L_cache": 3, "vocab_size": 1000},
    "internvl_chat": {"model_type": "internvl_chat", "llm_config": {
        "model_type": "qwen2", "num_attention_heads": 4, "num_key_value_heads": 2,
        "hidden_size": 256, "num_hidden_layers": 2, "intermediate_size": 512,
        "vocab_size": 1000}},
    "mistral3": {"model_type": "mistral3", "text_config": {
        "model_type": "mistral", "num_attention_heads": 8, "num_key_value_heads": 2,
        "hidden_size": 256, "num_hidden_layers": 2, "intermediate_size": 512,
        "vocab_size": 1000}},
    "chatglm": {"model_type": "chatglm", "num_layers": 2, "padded_vocab_size": 1000,
                "hidden_size": 256, "ffn_hidden_size": 512, "kv_channels": 64,
                "num_attention_heads": 4, "multi_query_attention": True,
                "multi_query_group_num": 2, "add_qkv_bias": True},
    "qwen3_5": {"model_type": "qwen3_5", "tie_word_embeddings": True, "text_config": {
        "model_type": "qwen3_5_text", "hidden_size": 256, "intermediate_size": 512,
        "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 64, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
        "linear_key_head_dim": 32, "linear_value_head_dim": 32, "vocab_size": 1000,
        "rope_parameters": {"partial_rotary_factor": 0.25}}},
    "nemotron-nas": {"model_type": "nemotron-nas", "hidden_size": 256,
                     "num_attention_heads": 4, "num_hidden_layers": 3, "vocab_size": 1000,
                     "block_configs": [
                         {"attention": {"n_heads_in_group": 2}, "ffn": {"ffn_mult": 1.0}},
                         {"attention": {"no_op": True}, "ffn": {"ffn_mult": 0.5}},
                         {"attention": {"replace_with_linear": True},
                          "ffn": {"no_op": True}}]},
    "deci": {"model_type": "deci", "hidden_size": 256, "intermediate_size": 512,
             "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 1000,
             "num_key_value_heads_per_layer": [2, 1]},
    "mllama": {"model_type": "mllama", "text_config": {
        "model_type": "mllama_text_model", "hidden_size": 256, "intermediate_size": 512,
        "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 1000, "cross_attention_layers": [1]}},
}


def config_case(rnd: random.Random) -> Case:
    """A config.json of one family, mutated (values, keys, nesting, text)."""
    family = rnd.choice(sorted(FAMILIES))
    data = mutate_tree(rnd, FAMILIES[family], rnd.randint(1, 2))
    sized = [k for k, v in FAMILIES[family].items() if isinstance(v, int)]
    if rnd.random() < 0.2 and isinstance(data, dict) and sized:  # one size field's extremes
        data[rnd.choice(sized)] = rnd.choice((10**6, 4096, 4097, 131072, 2**31, 10**400, 0, -1))
    try:
        text = json.dumps(data, allow_nan=True)
    except (ValueError, RecursionError):
        text = "{}"
    r = rnd.random()
    if r < 0.1:
        text = text.replace("{", '{"model_type": "gpt2", ', 1)  # a duplicate key
    elif r < 0.15:
        text = "[" * rnd.choice((63, 65, 100000)) + "]" * 3
    elif r < 0.2:
        text = text[: rnd.randrange(len(text) + 1)]
    elif r < 0.25:
        text = text.replace("2", "NaN", 1)
    args = ["--batch", str(rnd.choice((1, 2))), "--prompt", str(rnd.choice((8, 16, 5000))),
            "--gen", str(rnd.choice((1, 2, 3)))]
    return Case("config", ["run", "--model", "{dir}/m/config.json", *args, "--json"],
                {"m/config.json": text})


INT_ARGS = ["0", "-1", "1", "2", "7", "2147483647", "2147483648", "9223372036854775808",
            "1" + "0" * 400, "1e16", "nan", "", "-0", " 3", "0x10", "٣"]
CLI_SHAPES = {
    "run": (["--batch", "--prompt", "--gen", "--tp", "--pp", "--microbatches", "--seed",
             "--prefetch"], ["--dtype", "--kv-dtype", "--attention", "--fidelity", "--arch",
                             "--model", "--placement"]),
    "op": (["--m", "--n", "--k", "--batch"], ["--dtype", "--fidelity", "--arch"]),
    "serve": (["--requests", "--max-num-seqs", "--max-num-batched-tokens", "--block-size",
               "--max-model-len", "--shared-prefix", "--prefix-groups", "--seed", "--replicas"],
              ["--rate", "--burstiness", "--duration", "--prompt", "--gen", "--slo", "--timeout",
               "--gpu-memory-utilization", "--swap-space", "--scheduler", "--preemption-mode",
               "--price-per-hour", "--over-context"]),
    "check": (["--batch", "--prompt", "--max-width", "--group", "--seed"],
              ["--dtype", "--kv-dtype", "--weights", "--phase", "--ops", "--model"]),
}
STR_ARGS = ["fp16", "fp8", "int4", "int2", "fp12", "", "x\ny", "flash", "unfused", "roofline",
            "tile", "cycle", "h100", "a100", "neupims-npu", "pim-hbm-pim", "duplex", "t4",
            "gpt2-small", "llama2-7b", "mixtral-8x7b", "bloom-176b", "weights=gpu.hbm:1",
            "weights=host_ddr:2", "=", "int8", "qkv_proj", "prefill", "decode", "\x01", "é" * 50,
            "/etc/passwd", "/dev/zero", "/nonexistent.yaml", "a" * 3000,
            # serving specs: rates, lengths, SLOs, durations, fractions
            "5@1e309", "2@10s,8@5s", "uniform:5:1", "zipf:1.2:1:100", "lognormal:100:1",
            "ttft=1s,tbt=50ms", "splitwise", "1e300", "1e-300", "0.001", "1h", "continuous",
            "chunked", "swap", "truncate", "nan"]


def cli_case(rnd: random.Random) -> Case:
    """A command with options at their extremes; runs stay small unless an option makes them
    large, in which case the size estimate must refuse them."""
    cmd = rnd.choice(sorted(CLI_SHAPES) + ["arch", "models", "sweep"])
    if cmd == "arch":
        return Case("cli", ["arch", rnd.choice(("list", "show", "validate", "bogus")),
                            rnd.choice(STR_ARGS)][: rnd.randint(2, 3)])
    if cmd == "models":
        return Case("cli", ["models", rnd.choice(("list", "show", "x"))])
    if cmd == "sweep":
        spec = str(rnd.choice(SWEEP_EXAMPLES))
        return Case("cli", ["sweep", spec, "--dry-run", "--json",
                            rnd.choice(("--workers", "--executor")),
                            rnd.choice(INT_ARGS + ["ray", "local"])])
    int_opts, str_opts = CLI_SHAPES[cmd]
    argv = [cmd] + (["gemm", "--m", "64", "--n", "64", "--k", "64"] if cmd == "op" else [])
    if cmd == "run":
        argv += SMALL_RUN
    if cmd == "serve":
        argv += ["--arch", "h100", "--tp", "1", "--model", "gpt2-small", "--requests", "4",
                 "--prompt", "16", "--gen", "2", "--quiet"]
    if cmd == "check":
        argv += ["--model", "gpt2-small", "--prompt", "8", "--max-width", "128", "--phase",
                 "decode"]
    for _ in range(rnd.randint(1, 3)):
        if rnd.random() < 0.6:
            argv += [rnd.choice(int_opts), rnd.choice(INT_ARGS)]
        else:
            argv += [rnd.choice(str_opts), rnd.choice(STR_ARGS)]
    argv.append("--json")
    return Case("cli", argv)


#: what a number in a line of a data file becomes (one token of :func:`mutate_lines`)
TOKENS = ["-1", "0", "1e309", "nan", "abc", "", "9" * 23, "0.5", "-0", "1e-320", "inf",
          "2147483648", "  ", ",", ";", "0x10", "1_000", "\x00", "é", "1,2", "1e16"]


def mutate_lines(rnd: random.Random, text: str) -> str:
    """Line-level mutations of a data file (CSV, INI, XML, a trace): one to three of a line
    deleted, doubled, a number or word in it replaced by a hostile token, or the text cut."""
    import re

    lines = text.splitlines()
    for _ in range(rnd.randint(1, 3)):
        if not lines:
            break
        op, i = rnd.random(), rnd.randrange(len(lines))
        if op < 0.15:
            del lines[i]
        elif op < 0.25:
            lines.insert(i, lines[i])
        elif op < 0.35:
            return "\n".join(lines)[: rnd.randrange(len(text) + 1)]
        else:
            words = list(re.finditer(r"[-+0-9.eExa-fA-F]+|[A-Za-z_]+", lines[i]))
            m = rnd.choice(words) if words else None
            lines[i] = lines[i][:m.start()] + rnd.choice(TOKENS) + lines[i][m.end():] if m \
                else lines[i] + rnd.choice(TOKENS)
    return "\n".join(lines) + "\n"


def files_case(rnd: random.Random) -> Case:
    """A data file a command reads, mutated line by line: a serving trace, a prompt-length
    file, per-expert token counts, and (with the reference folder) the peer tools' inputs
    ``xpusim import`` runs: a DRAMsim3 INI and trace, a SCALE-Sim config and topology, an
    MQSim SSD configuration and workload (XML)."""
    from workloads.reference_data import reference_dir

    ref = reference_dir()
    kinds = ["serve", "prompts", "experts"] + \
        (["dramsim3", "scalesim", "mqsim"] if ref.is_dir() else [])
    kind = rnd.choice(kinds)
    quiet = ["--json", "--quiet"]
    if kind == "serve":
        text = "arrival_s,prompt_tokens,output_tokens\n" + "".join(
            f"{i * 0.05:.3f},{rnd.randint(1, 600)},{rnd.randint(1, 40)}\n" for i in range(20))
        return Case("files", ["serve", "--arch", "h100", "--tp", "1", "--model", "llama2-7b",
                              "--trace", "{dir}/t.csv", *quiet], {"t.csv": mutate_lines(rnd, text)})
    if kind == "prompts":
        text = "".join(f"{rnd.randint(1, 2000)}\n" for _ in range(10))
        return Case("files", ["serve", "--arch", "h100", "--tp", "1", "--model", "llama2-7b",
                              "--prompt-file", "{dir}/p.txt", "--requests", "5", *quiet],
                    {"p.txt": mutate_lines(rnd, text)})
    if kind == "experts":
        text = "expert,tokens\n" + "".join(f"{e},{rnd.randint(0, 500)}\n" for e in range(8)) \
            if rnd.random() < 0.7 else "".join(f"{rnd.randint(0, 500)}\n" for _ in range(8))
        return Case("files", ["run", "--arch", "dgx-h100", "--model", "mixtral-8x7b", "--tp", "4",
                              "--ep", "4", "--prompt", "16", "--gen", "2", "--expert-counts",
                              "{dir}/e.csv", *quiet], {"e.csv": mutate_lines(rnd, text)})
    if kind == "dramsim3":
        config = rnd.choice(sorted((ref / "dram" / "dramsim3_configs").glob("*.ini")))
        trace = "".join(f"0x{rnd.randrange(1 << 30) * 64:x} "
                        f"{'READ' if rnd.random() < 0.7 else 'WRITE'} {c * 4}\n"
                        for c in range(200))
        files = {"c.ini": config.read_text(), "t.trc": trace}
        argv = ["import", "dramsim3", "--config", "{dir}/c.ini", "--trace", "{dir}/t.trc",
                "--cycles", rnd.choice(("2000", "2000", "0", "-5", "1e9", "abc")), *quiet]
    elif kind == "scalesim":
        folder = ref / "accel" / "scalesim_inputs"
        files = {"c.cfg": rnd.choice(sorted(folder.glob("*.cfg"))).read_text(),
                 "t.csv": rnd.choice(sorted(folder.glob("*.csv"))).read_text()}
        argv = ["import", "scalesim", "--config", "{dir}/c.cfg", "--topology", "{dir}/t.csv",
                *quiet] + (["--analytical"] if rnd.random() < 0.3 else [])
    else:
        folder = ref / "ssd" / "mqsim_inputs"
        files = {"c.xml": rnd.choice(sorted(folder.glob("ssd*.xml"))).read_text(),
                 "w.xml": rnd.choice(sorted(folder.glob("S*_workload.xml"))).read_text()}
        argv = ["import", "mqsim", "--config", "{dir}/c.xml", "--workload", "{dir}/w.xml",
                *quiet]
    name = rnd.choice(sorted(files))
    files[name] = mutate_lines(rnd, files[name])
    return Case("files", argv, files)


CAMPAIGNS = {"arch": arch_case, "sweep": sweep_case, "config": config_case, "cli": cli_case,
             "files": files_case}


# --- running one case --------------------------------------------------------------------------
class Hang(Exception):
    """The case ran past its time bound."""


@dataclass
class Outcome:
    """What one case did, and which property it broke (``""`` when none)."""

    campaign: str
    argv: list[str]
    code: int | None
    seconds: float
    rss_mb: float
    stderr: str
    problem: str = ""   # traceback | hang | memory | exit | lines | nonfinite
    detail: str = ""


def _finite_json(text: str) -> bool:
    def bad(name: str) -> Any:
        raise ValueError(name)

    data = json.loads(text, parse_constant=bad)
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return False
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return True


def _alarm(signum: int, frame: Any) -> None:
    raise Hang()


def run_case(case: Case, folder: Path, timeout_s: float = 60.0,
             memory_mb: float = 8192.0) -> Outcome:
    """Run ``case`` in this process (stdout and stderr captured) and check its properties."""
    from xpusim.cli import main

    argv = case.materialise(folder)
    out, err = io.StringIO(), io.StringIO()
    code: int | None = None
    problem = detail = ""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    except Hang:
        problem, detail = "hang", f"> {timeout_s:g} s"
    except MemoryError:
        problem, detail = "memory", "MemoryError"
    except BaseException as exc:  # noqa: BLE001 - any escape is a traceback for the user
        problem, detail = "traceback", f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stderr = err.getvalue()
    if not problem:
        problem, detail = _judge(case, argv, code, stdout=out.getvalue(), stderr=stderr,
                                 folder=folder)
    if not problem and rss > memory_mb and rss > before:
        problem, detail = "memory", f"peak RSS {rss:.0f} MB"
    return Outcome(case.campaign, argv, code, seconds, rss, stderr, problem, detail)


def _judge(case: Case, argv: list[str], code: int | None, stdout: str, stderr: str,
           folder: Path) -> tuple[str, str]:
    allowed = {0, 2} | ({1} if argv and argv[0] == "check" else set())
    if "Traceback" in stderr:
        return "traceback", stderr[-300:]
    if code not in allowed:
        return "exit", f"exit {code}: {stderr.strip()[:300]}"
    lines = stderr.splitlines()
    warnings = [ln for ln in lines if ln.startswith("xpusim: warning: ")]
    errors = [ln for ln in lines if ln.startswith("xpusim: error: ")]
    if (stderr and not stderr.endswith("\n")) or len(errors) > 1 or len(warnings) > 3 \
            or len(errors) + len(warnings) != len(lines):
        return "lines", repr(stderr[:300])
    if code == 2 and (len(errors) != 1 or lines[-1] != errors[0]):
        return "lines", f"exit 2 without one final error line: {stderr[:200]!r}"
    try:
        if code == 0 and "--json" in argv and stdout.strip() and not _finite_json(stdout):
            return "nonfinite", "stdout JSON"
        for summary in folder.rglob("summary.json"):
            if not _finite_json(summary.read_text()):
                return "nonfinite", str(summary)
    except ValueError as exc:
        return "nonfinite", f"invalid JSON ({exc})"[:200]
    return "", ""


def make_case(campaign: str, rnd: random.Random) -> Case:
    return CAMPAIGNS[campaign](rnd)
