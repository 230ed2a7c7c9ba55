"""What the light commands load, and the mechanisms that keep them light (issue 18, item 1).

Each CLI case runs in a fresh interpreter (``sys.modules`` there is the check, not a timing):
``--help``, ``arch list``, ``models list`` and ``op gemm`` load none of numba, numpy, SimPy,
pandas or PyYAML (built-in presets come from the parsed-preset cache once it is warm); ``run``
on defaults takes the one-stream path and never imports SimPy; numpy's BLAS starts one thread
unless the user chose a count. Timing is ``benchmarks/bench_startup.py``'s job. Also here:
the parsed-preset cache (:mod:`arch.preset_cache`), :class:`sim.lazy_module.LazyModule` and
``@record`` (:mod:`workloads.records`: its shared repr / eq / hash against the generated ones).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WATCHED = ("numba", "llvmlite", "numpy", "simpy", "pandas", "pyarrow", "matplotlib", "yaml",
           "importlib.metadata")

_PROBE = r"""
import contextlib, io, json, os, sys
from xpusim.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    rc = main(json.loads(sys.argv[1]))
task = "/proc/self/task"
print(json.dumps({"rc": rc, "loaded": [m for m in json.loads(sys.argv[2]) if m in sys.modules],
                  "blas": os.environ.get("OPENBLAS_NUM_THREADS"),
                  "threads": len(os.listdir(task)) if os.path.isdir(task) else None}))
"""


def _cli(argv: list[str], cache: Path, watched: tuple[str, ...] = WATCHED, **env: str) -> dict:
    """Run ``xpusim ARGV`` in a fresh interpreter with the preset cache in ``cache``; report
    which of ``watched`` it loaded."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS",
                            "MKL_NUM_THREADS")}
    environ.update({"PYTHONPATH": str(ROOT), "XPUSIM_CACHE_DIR": str(cache), **env})
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argv), json.dumps(watched)],
                         cwd=cache.parent, capture_output=True, text=True, timeout=120,
                         env=environ)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


LIGHT = {
    "--help": ["--help"],
    "arch list": ["arch", "list"],
    "models list": ["models", "list"],
    "op gemm": ["op", "gemm", "--m", "4096", "--n", "4096", "--k", "4096", "--json"],
}


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> Path:
    """A preset cache filled by one ``arch list`` (every preset parsed once)."""
    cache = tmp_path_factory.mktemp("startup") / "cache"
    first = _cli(["arch", "list"], cache)
    assert first["rc"] == 0 and "yaml" in first["loaded"]   # a cold cache parses the YAML
    assert len(list((cache / "presets").glob("*.json"))) >= 10
    return cache


@pytest.mark.parametrize("label", list(LIGHT))
def test_light_commands_load_no_heavy_package(label, warm_cache):
    res = _cli(LIGHT[label], warm_cache)
    assert res["rc"] == 0
    assert res["loaded"] == [], f"{label} loaded {res['loaded']}"


def test_models_list_loads_no_typing(warm_cache):
    """The model presets (``@record`` classes, workloads/records.py) load without ``typing``
    (importing it was 8 M of the command's 189 M instructions)."""
    res = _cli(["models", "list"], warm_cache, ("typing",))
    assert res["rc"] == 0 and res["loaded"] == []


def test_default_run_takes_the_path_without_simpy(warm_cache):
    """One GPU, defaults: the one-stream path (no event loop), so SimPy (and the
    importlib.metadata it reads its version with) never loads; numpy does, with one BLAS
    thread, and the process stays single-threaded. The second run of an arch takes its
    record's YAML from the cache: no PyYAML."""
    res = _cli(["run", "--json", "--quiet"], warm_cache)
    assert res["rc"] == 0
    assert "numpy" in res["loaded"]
    assert not {"simpy", "importlib.metadata", "numba", "pandas"} & set(res["loaded"])
    again = _cli(["run", "--json", "--quiet"], warm_cache)
    assert again["rc"] == 0 and "yaml" not in again["loaded"]
    assert res["blas"] == "1"
    if res["threads"] is not None:
        assert res["threads"] == 1


#: what a one-GPU run on defaults does not use: tensor placement and its parser, ops hosted off
#: the device, flash tiers, config.json models, the other commands' modules, "did you mean"
#: (difflib, error paths only), shutil (argparse's terminal width), threading (progress bars),
#: the component / link topology of system archs (a one-device arch's system is built without)
NOT_ON_DEFAULT_RUN = ("sim.system.placement", "arch.sections.placement", "sim.system.hosted",
                      "sim.system.storage", "workloads.hf_config", "xpusim.commands.check",
                      "xpusim.commands.op", "xpusim.commands.serve", "xpusim.commands.validate",
                      "xpusim.commands.import_", "difflib", "shutil", "threading",
                      "arch.sections.topology", "arch.topology_view")


def test_default_run_loads_nothing_it_does_not_use(warm_cache):
    res = _cli(["run", "--json", "--quiet"], warm_cache, NOT_ON_DEFAULT_RUN)
    assert res["rc"] == 0 and res["loaded"] == []


def test_runs_that_use_them_still_load_them(warm_cache):
    """Controls: a placed run with decode attention on the host CPU loads placement and the
    hosted-op module; an unknown model's error names the closest preset (difflib)."""
    res = _cli(["run", "--json", "--quiet", "--arch", "t4-flexgen", "--model", "opt-6.7b",
                "--cpu-attention", "--placement", "kv_cache=host_ddr", "--gen", "2",
                "--prompt", "32"], warm_cache, NOT_ON_DEFAULT_RUN)
    assert res["rc"] == 0
    assert {"sim.system.placement", "sim.system.hosted", "arch.sections.topology",
            "arch.topology_view"} <= set(res["loaded"])   # t4-flexgen: a system arch
    bad = _cli(["run", "--json", "--model", "llama2-7bb"], warm_cache, NOT_ON_DEFAULT_RUN)
    assert bad["rc"] == 2 and "difflib" in bad["loaded"]


def test_one_command_parser_answers_as_the_full_one(capsys):
    """With the command first, only its module is imported; help and errors read the same as
    the full parser's (``--help run`` still lists every command)."""
    from xpusim.cli import build_parser, main

    full = build_parser("run")
    alone = build_parser("run", alone=True)
    assert [a.dest for a in full._subparsers._group_actions[0].choices["run"]._actions] == \
        [a.dest for a in alone._subparsers._group_actions[0].choices["run"]._actions]
    assert len(full._subparsers._group_actions[0].choices) >= 10
    assert list(alone._subparsers._group_actions[0].choices) == ["run"]
    for parser in (full, alone):
        with pytest.raises(SystemExit):
            parser.parse_args(["run", "--help"])
    help_full, help_alone = (capsys.readouterr().out.split("usage: ")[1:])
    assert help_full == help_alone
    assert main(["--help", "run"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("validate", "sweep", "models", "run"))
    assert main(["run", "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "xpusim: error: unrecognized arguments: --no-such-option " \
        "(see 'xpusim --help')"


def test_help_width_follows_columns_as_shutil_does(monkeypatch):
    import shutil

    from xpusim.cli import HelpFormatter, _terminal_columns

    monkeypatch.setenv("COLUMNS", "57")
    assert _terminal_columns() == shutil.get_terminal_size().columns == 57
    assert HelpFormatter("xpusim")._width == 55        # argparse's own: columns - 2
    monkeypatch.delenv("COLUMNS")
    assert _terminal_columns() == shutil.get_terminal_size().columns


def test_event_path_still_loads_simpy(warm_cache):
    """Control: a run that needs the event loop (two tensor-parallel streams and their
    collectives) imports SimPy on first use and completes."""
    res = _cli(["run", "--json", "--quiet", "--arch", "dgx-h100", "--tp", "2", "--gen", "4",
                "--prompt", "64"], warm_cache)
    assert res["rc"] == 0
    assert "simpy" in res["loaded"]


@pytest.mark.parametrize("var", ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_users_blas_thread_count_wins(var, warm_cache):
    res = _cli(["models", "list"], warm_cache, **{var: "2"})
    assert res["blas"] == ("2" if var == "OPENBLAS_NUM_THREADS" else None)


# --- the parsed-preset cache --------------------------------------------------------------

def _python(code: str) -> subprocess.CompletedProcess:
    """``code`` run by a fresh interpreter on this checkout; fails the test if it fails."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def _counting_parse(calls: list):
    import yaml

    def parse(text):
        calls.append(text)
        return yaml.safe_load(text)
    return parse


def test_preset_cache_parses_each_text_once(tmp_path, monkeypatch):
    from arch.preset_cache import cache_key, parse_cached

    monkeypatch.setenv("XPUSIM_CACHE_DIR", str(tmp_path))
    calls: list = []
    text = "name: x\ntype: gpu\nmemory: {hbm: {capacity: 80 GB}}\nflops: [1.5e+15, 2]\n"
    first = parse_cached("x", text, _counting_parse(calls))
    again = parse_cached("x", text, _counting_parse(calls))
    assert first == again == {"name": "x", "type": "gpu", "memory": {"hbm": {"capacity": "80 GB"}},
                              "flops": [1.5e15, 2]}
    assert isinstance(again["flops"][1], int) and len(calls) == 1
    assert (tmp_path / "presets" / cache_key("x", text)).is_file()
    edited = text.replace("80 GB", "96 GB")          # an edited preset is parsed, not read stale
    assert parse_cached("x", edited, _counting_parse(calls))["memory"]["hbm"]["capacity"] == \
        "96 GB"
    assert len(calls) == 2 and cache_key("x", edited) != cache_key("x", text)


def test_preset_cache_skips_what_json_cannot_hold_and_survives_damage(tmp_path, monkeypatch):
    from arch.preset_cache import cache_key, parse_cached

    monkeypatch.setenv("XPUSIM_CACHE_DIR", str(tmp_path))
    calls: list = []
    int_keys = "table: {1: a, 2: b}\n"               # JSON would turn the keys into text
    for _ in range(2):
        assert parse_cached("k", int_keys, _counting_parse(calls)) == {"table": {1: "a", 2: "b"}}
    assert len(calls) == 2 and not (tmp_path / "presets" / cache_key("k", int_keys)).exists()
    text = "a: 1\n"
    parse_cached("d", text, _counting_parse(calls))
    (tmp_path / "presets" / cache_key("d", text)).write_text("{not json")
    assert parse_cached("d", text, _counting_parse(calls)) == {"a": 1} and len(calls) == 4
    monkeypatch.setenv("XPUSIM_CACHE_DIR", "off")
    parse_cached("d", text, _counting_parse(calls))
    assert len(calls) == 5


def test_cached_presets_equal_their_yaml(tmp_path, monkeypatch):
    """Every built-in preset read through a warm cache equals libyaml's parse of its file."""
    import yaml

    from arch import PRESET_DIR, list_presets, read_yaml

    monkeypatch.setenv("XPUSIM_CACHE_DIR", str(tmp_path))
    names = list_presets()
    for name in names:
        read_yaml(PRESET_DIR / f"{name}.yaml")             # fills the cache
    assert len(list((tmp_path / "presets").glob("*.json"))) == len(names)
    for name in names:
        path = PRESET_DIR / f"{name}.yaml"
        assert read_yaml(path) == yaml.load(path.read_text(), Loader=yaml.CSafeLoader), name


# --- LazyModule -----------------------------------------------------------------------------

def test_lazy_module_imports_on_first_use_and_rebinds():
    code = ("import sys\nfrom sim.lazy_module import LazyModule\n"
            "ns = {}\nns['colorsys'] = LazyModule('colorsys', ns)\n"
            "before = 'colorsys' in sys.modules\n"
            "h = ns['colorsys'].rgb_to_hsv(1.0, 0.0, 0.0)\n"
            "print(before, 'colorsys' in sys.modules, ns['colorsys'] is sys.modules['colorsys'],"
            " h)")
    out = _python(code)
    assert out.stdout.split() == ["False", "True", "True", "(0.0,", "1.0,", "1.0)"]


# --- the run record's arch YAML ------------------------------------------------------------

def test_record_arch_yaml_is_safe_dumps_text():
    """The record's arch YAML (libyaml's emitter where present) is byte for byte what the
    pure-Python ``yaml.safe_dump`` writes, for every preset, and loads back to the same arch
    data; a text with quotes, unicode and a long line also loads back equal."""
    import yaml

    from arch import list_presets, load_arch
    from sim.record import arch_yaml

    for name in list_presets():
        data = load_arch(name).to_dict()
        text = arch_yaml(data)
        assert text == yaml.safe_dump(data, sort_keys=False, allow_unicode=True), name
        assert yaml.safe_load(text) == data, name
    odd = {"description": "a 'quoted' \"text\": µ-arch, 2 TB/s # not a comment " * 5,
           "note": "line one\r\nline two", "empty": "", "yes": "yes", "num": "1.5e+15"}
    assert yaml.safe_load(arch_yaml(odd)) == odd


def test_dump_cache_returns_the_same_text_and_keys_by_content(tmp_path, monkeypatch):
    """The memoised record YAML is the dump's text byte for byte (a carriage return inside a
    value included); other data gets its own entry; data JSON cannot hold is dumped directly."""
    from arch.preset_cache import dump_cached
    from sim.record import arch_yaml

    monkeypatch.setenv("XPUSIM_CACHE_DIR", str(tmp_path))
    calls: list = []

    def dump(data):
        calls.append(1)
        return arch_yaml(data)

    data = {"name": "x", "gpu": {"sm_count": 132, "clock": 1.98e9, "ok": True},
            "note": "a\r\nb", "list": [1, 2.5, "three"]}
    first = dump_cached("t", data, dump)
    assert dump_cached("t", data, dump) == first == arch_yaml(data) and len(calls) == 1
    assert len(list((tmp_path / "dumps").iterdir())) == 1
    other = {**data, "gpu": {**data["gpu"], "sm_count": 108}}
    assert "sm_count: 108" in dump_cached("t", other, dump) and len(calls) == 2
    assert dump_cached("t", {1: "a"}, dump) == arch_yaml({1: "a"}) and len(calls) == 3
    assert dump_cached("t", {1: "a"}, dump) and len(calls) == 4      # never cached
    assert dump_cached("u", data, dump) == first and len(calls) == 5  # kinds do not mix


# --- section modules load on demand ---------------------------------------------------------

def test_section_index_matches_what_the_modules_register():
    """The index read from the section modules' source names, for every section and device
    type, the module that registers it (checked in a fresh interpreter that loads them all),
    and a GPU arch loads only the modules of its own sections."""
    code = ("import json, sys\nfrom arch import load_arch\nfrom arch.spec import DEVICE_TYPES, "
            "SECTIONS\nload_arch('h100')\n"
            "gpu = sorted(m for m in sys.modules if m.startswith('arch.sections.'))\n"
            "import arch.sections as s\ns.load_all()\n"
            "print(json.dumps({'index': s.index(), 'gpu': gpu,\n"
            "  'sections': {k: v.__module__ for k, v in SECTIONS.items() if hasattr(v, "
            "'__module__') and v.__module__.startswith('arch.sections.')},\n"
            "  'all_sections': sorted(SECTIONS), 'types': sorted(DEVICE_TYPES)}))")
    out = _python(code)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    sections, types = res["index"]
    assert sorted(sections) == res["all_sections"] and sorted(types) == res["types"]
    for key, module in res["sections"].items():       # dataclass sections name their module
        assert f"arch.sections.{sections[key]}" == module, key
    assert types["gpu"] == "gpu" and types["system"] == "topology" and types["xpu_pim"] == "pim"
    assert "arch.sections.gpu" in res["gpu"] and "arch.sections.common" in res["gpu"]
    assert not {"arch.sections.npu", "arch.sections.pim", "arch.sections.fpga",
                "arch.sections.dram", "arch.sections.cpu"} & set(res["gpu"])


def test_registry_lookup_of_an_unloaded_section_loads_it():
    code = ("from arch.spec import SECTIONS, DEVICE_TYPES\nimport sys\n"
            "before = 'arch.sections.npu' in sys.modules\n"
            "print(before, SECTIONS['npu'].__name__, 'npu' in DEVICE_TYPES)\n"
            "try:\n    SECTIONS['no_such_section']\nexcept KeyError:\n    print('KeyError')")
    out = _python(code)
    assert out.stdout.split() == ["False", "NpuSpec", "True", "KeyError"]


# --- @record (workloads/records.py): dataclasses with shared repr / eq / hash ---------------

def _twin(cls: type) -> type:
    """A plain ``@dataclass`` with the fields and frozen-ness of record class ``cls``: the
    generated methods the record's shared ones must match."""
    import dataclasses

    specs = []
    for f in dataclasses.fields(cls):
        kw = {"repr": f.repr, "hash": f.hash, "compare": f.compare, "kw_only": f.kw_only}
        if f.default is not dataclasses.MISSING:
            kw["default"] = f.default
        if f.default_factory is not dataclasses.MISSING:
            kw["default_factory"] = f.default_factory
        specs.append((f.name, f.type, dataclasses.field(**kw)))
    return dataclasses.make_dataclass(cls.__name__, specs,
                                      frozen=cls.__dataclass_params__.frozen)


def _same_methods(objs: list, twin: type) -> None:
    """repr, ==, != and hash of ``objs`` (one record class) equal the twin's generated
    methods applied to the same objects (pairs: each with itself, a field-equal copy, the
    others)."""
    import copy

    for a in objs:
        assert repr(a) == twin.__repr__(a)
        for b in [a, copy.copy(a), *objs]:
            assert a.__eq__(b) is twin.__eq__(a, b)    # NotImplemented across classes too
            assert (a == b) is (a is b if twin.__eq__(a, b) is NotImplemented
                                else twin.__eq__(a, b))
        if twin.__hash__ is None:
            with pytest.raises(TypeError):
                hash(a)
        else:
            assert hash(a) == twin.__hash__(a)
    assert objs[0].__eq__(object()) is NotImplemented


def test_record_methods_equal_the_generated_ones():
    """Field options (repr=False, compare=False, hash=...), one and no compared field, NaN
    inside (tuple equality treats the same object as equal), mutable (unhashable), slots."""
    import dataclasses
    import math

    from workloads.records import record

    def body() -> dict:
        return {"__annotations__": {"a": "int", "b": "float", "c": "str", "d": "tuple"},
                "c": dataclasses.field(default="x", repr=False),
                "d": dataclasses.field(default=(), compare=False)}

    nan = math.nan
    for frozen in (True, False):
        cls = record(type("R", (), body()), frozen=frozen)
        sub = type("Sub", (cls,), {})   # a plain subclass: never equal to a base instance
        _same_methods([cls(1, 2.0), cls(1, 2.0, "y"), cls(2, nan), cls(1, 2.0, d=(3,)),
                       sub(1, 2.0)], _twin(cls))
    one = record(type("One", (), {"__annotations__": {"a": "float", "b": "int"},
                                  "b": dataclasses.field(default=0, compare=False)}),
                 frozen=True)
    _same_methods([one(nan), one(1.0), one(1.0, 5)], _twin(one))
    none = record(type("Nil", (), {"__annotations__": {"a": "int"},
                                   "a": dataclasses.field(default=0, compare=False)}),
                  frozen=True)
    _same_methods([none(1), none(2)], _twin(none))
    hashed = record(type("H", (), {"__annotations__": {"a": "int", "b": "int"},
                                   "b": dataclasses.field(default=0, hash=False)}),
                    frozen=True)
    _same_methods([hashed(1, 2), hashed(1, 3)], _twin(hashed))
    assert hash(hashed(1, 2)) == hash(hashed(1, 3)) and hashed(1, 2) != hashed(1, 3)
    slotted = record(type("S", (), {"__annotations__": {"a": "int", "b": "list"}}), slots=True)
    _same_methods([slotted(1, [2]), slotted(1, [3])], _twin(slotted))
    assert not hasattr(slotted(1, []), "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record(type("F", (), {"__annotations__": {"a": "int"}}), frozen=True)(1).a = 2
    with pytest.raises(TypeError, match="defines __eq__"):
        record(type("E", (), {"__annotations__": {"a": "int"}, "__eq__": lambda s, o: True}))


def test_record_classes_of_a_run_match_their_generated_methods(monkeypatch):
    """Every record class with instances alive while a TP2 x PP2 run executes its plan (ops,
    einsums, tiers, routes, the plan ...): repr / eq / hash on those instances equal a plain
    dataclass's."""
    import dataclasses
    import gc

    import sim.run
    from arch import load_arch
    from workloads.models import get_model
    from workloads.scenario import Scenario

    found: dict[type, list] = {}
    execute = sim.run.execute

    def snapshot(*args, **kwargs):
        for obj in gc.get_objects():
            cls = type(obj)
            if "__record_eq__" in cls.__dict__ and len(found.setdefault(cls, [])) < 12:
                found[cls].append(obj)
        return execute(*args, **kwargs)

    monkeypatch.setattr(sim.run, "execute", snapshot)
    sim.run.simulate(load_arch("dgx-h100"), get_model("llama2-7b"),
                     Scenario(batch=2, prompt_len=32, gen_len=3, tp=2, pp=2))
    names = {c.__qualname__ for c in found}
    assert {"TensorRef", "Einsum", "Cascade", "Collective", "ModelConfig", "Scenario",
            "Tier", "Route", "Hop", "Link", "Plan", "Policies"} <= names, names
    for cls, objs in found.items():
        assert dataclasses.is_dataclass(cls)
        _same_methods(objs, _twin(cls))
