"""Placement of tensor classes on tiers: hand counts for interleave, priority, shared tiers,
FlexGen-style fractions, the error messages, the arch schema and the --placement grammar."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from arch.schema import BuildContext, SpecError, build_any, dump, leaf_paths
from arch.sections.placement import PlacementSpec
from sim.devices.base import SimError
from sim.system.placement import (
    TENSOR_CLASSES,
    Placement,
    TierRoom,
    format_placement,
    parse_placement,
    place,
)

GIB = 2.0**30
PAGE = 4096.0


def _rooms(**caps) -> dict[str, TierRoom]:
    """Tiers named by keyword (``gpu_hbm`` -> ``gpu.hbm``), capacity in GiB, one sharer."""
    return {k.replace("_hbm", ".hbm"): TierRoom(k.replace("_hbm", ".hbm"), v * GIB)
            for k, v in caps.items()}


def _spec(data: dict, file: str = "s.yaml") -> PlacementSpec:
    return build_any(PlacementSpec, data, BuildContext(file=file), "placement")


def _pages(rooms_pages: list[float], pages: float) -> dict[str, float]:
    """Interleave ``pages`` (whole or fractional last) over tiers a, b, c... with the given
    room in pages; returns pages per tier."""
    tiers = {n: TierRoom(n, r * PAGE) for n, r in zip("abcdefg", rooms_pages, strict=False)}
    spec = _spec({"policy": "interleave", "tiers": list(tiers)})
    placed = place(spec, {"weights": pages * PAGE}, {**tiers, "home": TierRoom("home", 0)},
                   "home")
    return {t: placed.bytes["weights"].get(t, 0.0) / PAGE for t in tiers}


def _reference(rooms_pages: list[float], pages: float) -> dict[str, float]:
    """Page-by-page round robin (an independent model of MPOL_INTERLEAVE): the cursor walks
    the tiers in order and skips any without room for the page at hand."""
    names = list("abcdefg"[:len(rooms_pages)])
    room = dict(zip(names, rooms_pages, strict=True))
    got = dict.fromkeys(names, 0.0)
    full, rem = int(pages), pages - int(pages)
    sizes = [1.0] * full + ([rem] if rem else [])
    cursor = 0
    for size in sizes:
        for step in range(len(names)):
            t = names[(cursor + step) % len(names)]
            if room[t] >= size:
                room[t] -= size
                got[t] += size
                cursor = (names.index(t) + 1) % len(names)
                break
        else:
            raise AssertionError("reference ran out of room")
    return got


# --- interleave ---------------------------------------------------------------------------------

def test_ten_pages_over_three_tiers_is_4_3_3():
    assert _pages([100, 100, 100], 10) == {"a": 4, "b": 3, "c": 3}


def test_a_tier_that_fills_drops_out_and_the_rest_continue():
    # pages 0..5 go a,b,c,a,b,c; a is then full; pages 6..9 go b,c,b,c
    assert _pages([2, 10, 10], 10) == {"a": 2, "b": 4, "c": 4}
    # room of 2.5 pages holds 2 whole pages
    assert _pages([2.5, 10, 10], 10) == {"a": 2, "b": 4, "c": 4}


def test_partial_last_page_goes_to_the_next_tier_in_turn():
    # 10 whole pages (a gets 0,3,6,9) and half a page, page 10, on b
    assert _pages([100, 100, 100], 10.5) == {"a": 4, "b": 3.5, "c": 3}


@pytest.mark.parametrize("rooms,pages", [
    ([3, 7, 1, 20], 25), ([0, 5, 5], 9.25), ([1, 1, 1], 2.5), ([4, 4], 8), ([6, 0.5, 9], 12.5),
    ([2.5, 3, 100], 40), ([1000, 1, 1000, 2], 777.75),
])
def test_closed_form_matches_page_by_page_round_robin(rooms, pages):
    assert _pages(rooms, pages) == pytest.approx(_reference(rooms, pages))


def test_interleave_over_a_full_group_names_the_group_and_the_bytes():
    spec = parse_placement("interleave:a,b")
    tiers = {"home": TierRoom("home", 0), "a": TierRoom("a", 1 * GIB), "b": TierRoom("b", GIB)}
    with pytest.raises(SimError) as err:
        place(spec, {"optimizer": 2.5 * GIB}, tiers, "home")
    assert str(err.value) == ("placement: optimizer needs 0.5 GiB more on a|b "
                              "(capacity 2.0 GiB, nothing else on it)")


def test_interleave_of_chosen_classes_leaves_the_others_home():
    tiers = _rooms(gpu_hbm=80, host_ddr=100, cxl0=100, cxl1=100)
    spec = parse_placement("interleave[optimizer]:host_ddr,cxl0,cxl1;page_size=2MiB")
    assert spec.page_size == 2 * 2**20
    placed = place(spec, {"weights": 10 * GIB, "optimizer": 30 * GIB}, tiers, "gpu.hbm")
    # 30 GiB = 15360 pages of 2 MiB: 5120 each
    assert placed.bytes == {"weights": {"gpu.hbm": 10 * GIB},
                            "optimizer": {"host_ddr": 10 * GIB, "cxl0": 10 * GIB,
                                          "cxl1": 10 * GIB}}


# --- priority -----------------------------------------------------------------------------------

def test_priority_fills_tiers_in_order_after_the_unnamed_classes_went_home():
    tiers = _rooms(gpu_hbm=48, host_ddr=512)
    spec = parse_placement("priority:weights>gpu.hbm,host_ddr")
    placed = place(spec, {"weights": 60 * GIB, "kv_cache": 8 * GIB}, tiers, "gpu.hbm")
    # kv_cache has nowhere else to go: 8 GiB home first; weights fill the other 40, spill 20
    assert placed.bytes == {"weights": {"gpu.hbm": 40 * GIB, "host_ddr": 20 * GIB},
                            "kv_cache": {"gpu.hbm": 8 * GIB}}
    assert placed.moved("weights") == 20 * GIB
    assert placed.fraction("weights", "host_ddr") == pytest.approx(1 / 3)
    assert placed.tiers_of("weights") == ["gpu.hbm", "host_ddr"]


def test_priority_places_classes_in_the_given_order():
    tiers = _rooms(gpu_hbm=80, host_ddr=256, cxl0=512)
    placed = place(parse_placement("priority:optimizer,weights>host_ddr,cxl0"),
                   {"weights": 100 * GIB, "optimizer": 200 * GIB}, tiers, "gpu.hbm")
    assert placed.bytes["optimizer"] == {"host_ddr": 200 * GIB}
    assert placed.bytes["weights"] == {"host_ddr": 56 * GIB, "cxl0": 44 * GIB}
    placed = place(parse_placement("priority:weights,optimizer>host_ddr,cxl0"),
                   {"weights": 100 * GIB, "optimizer": 200 * GIB}, tiers, "gpu.hbm")
    assert placed.bytes["weights"] == {"host_ddr": 100 * GIB}
    assert placed.bytes["optimizer"] == {"host_ddr": 156 * GIB, "cxl0": 44 * GIB}


def test_cxl_study_local_dram_first_then_interleaved_over_the_cards():
    # host DDR 2 TiB and two 512 GiB CXL cards, each shared by 8 GPUs: 256 / 64 / 64 GiB each
    tiers = {"gpu.hbm": TierRoom("gpu.hbm", 80 * GIB),
             "host_ddr": TierRoom("host_ddr", 2048 * GIB, 8),
             "cxl0": TierRoom("cxl0", 512 * GIB, 8), "cxl1": TierRoom("cxl1", 512 * GIB, 8)}
    text = "priority:optimizer,weights,activations,gradients>host_ddr,cxl*"
    demands = {"optimizer": 180 * GIB, "weights": 60 * GIB, "activations": 30 * GIB,
               "gradients": 30 * GIB, "kv_cache": 0.0}
    placed = place(parse_placement(text), demands, tiers, "gpu.hbm")
    # 256 GiB of DDR: optimizer 180, weights 60, activations 16 (14 spill), gradients 0 (30 spill)
    assert placed.bytes["optimizer"] == {"host_ddr": 180 * GIB}
    assert placed.bytes["weights"] == {"host_ddr": 60 * GIB}
    assert placed.bytes["activations"] == {"host_ddr": 16 * GIB, "cxl0": 7 * GIB,
                                           "cxl1": 7 * GIB}
    assert placed.bytes["gradients"] == {"cxl0": 15 * GIB, "cxl1": 15 * GIB}
    assert placed.bytes["kv_cache"] == {}
    assert placed.on_tier("cxl0") == 22 * GIB
    assert placed.total("cxl0") == 8 * 22 * GIB
    assert placed.by_tier()["host_ddr"] == {"optimizer": 180 * GIB, "weights": 60 * GIB,
                                            "activations": 16 * GIB}
    # the same study as YAML: a list entry is an interleave group
    spec = _spec({"policy": "priority", "order": [
        {"classes": ["optimizer", "weights", "activations", "gradients"],
         "tiers": ["host_ddr", ["cxl0", "cxl1"]]}]})
    assert place(spec, demands, tiers, "gpu.hbm").bytes == placed.bytes


# --- shared tiers, explicit fractions -----------------------------------------------------------

def test_shared_tier_offers_each_device_its_share():
    ddr = TierRoom("host_ddr", 2 * 2**40, 8)
    assert ddr.per_device == 256 * GIB
    tiers = {"gpu.hbm": TierRoom("gpu.hbm", 80 * GIB), "host_ddr": ddr}
    spec = parse_placement("weights=host_ddr")
    placed = place(spec, {"weights": 256 * GIB}, tiers, "gpu.hbm")
    assert placed.total("host_ddr") == 2 * 2**40
    with pytest.raises(SimError) as err:
        place(spec, {"weights": 300 * GIB}, tiers, "gpu.hbm")
    assert str(err.value) == ("placement: weights needs 44.0 GiB more on host_ddr (capacity "
                              "256.0 GiB per device, 2048.0 GiB shared by 8, nothing else on it)")


def test_flexgen_percentages():
    # FlexGen policy: weights 50% GPU / 50% CPU, KV cache on the CPU, activations on the GPU
    text = "weights=gpu.hbm:50%,host_ddr;kv_cache=host_ddr;activations=gpu.hbm"
    spec = parse_placement(text)
    assert spec == _spec({"policy": "explicit", "fractions": {
        "weights": {"gpu.hbm": 0.5, "host_ddr": 0.5}, "kv_cache": {"host_ddr": 1},
        "activations": {"gpu.hbm": 1.0}}})
    tiers = {"gpu.hbm": TierRoom("gpu.hbm", 80e9), "host_ddr": TierRoom("host_ddr", 200e9)}
    placed = place(spec, {"weights": 60e9, "kv_cache": 20e9, "activations": 2e9}, tiers,
                   "gpu.hbm")
    assert placed.bytes == {"weights": {"gpu.hbm": 30e9, "host_ddr": 30e9},
                            "kv_cache": {"host_ddr": 20e9}, "activations": {"gpu.hbm": 2e9}}
    assert placed.moved("weights") == 30e9 and placed.moved("kv_cache") == 20e9
    assert placed.away() == {"weights": {"host_ddr": 30e9}, "kv_cache": {"host_ddr": 20e9}}
    assert placed.on_tier("gpu.hbm") == 32e9
    assert placed.describe()[0] == "weights: gpu.hbm 27.9 GiB (50%), host_ddr 27.9 GiB (50%)"


def test_no_spec_puts_everything_home():
    tiers = _rooms(gpu_hbm=80, host_ddr=512)
    placed = place(None, {"weights": 10 * GIB, "kv_cache": 5 * GIB}, tiers, "gpu.hbm")
    assert placed.bytes == {"weights": {"gpu.hbm": 10 * GIB}, "kv_cache": {"gpu.hbm": 5 * GIB}}
    assert placed.home == "gpu.hbm" and placed.moved("weights") == 0.0


def test_parts_follow_their_parent_unless_named():
    tiers = _rooms(gpu_hbm=80, host_ddr=512, cxl0=512)
    spec = parse_placement("optimizer=host_ddr;optimizer_variance=cxl0;weights=gpu.hbm")
    demands = {"optimizer_master": 4 * GIB, "optimizer_momentum": 4 * GIB,
               "optimizer_variance": 4 * GIB, "experts": 6 * GIB, "weights": 2 * GIB}
    placed = place(spec, demands, tiers, "gpu.hbm")
    assert placed.bytes["optimizer_master"] == {"host_ddr": 4 * GIB}
    assert placed.bytes["optimizer_momentum"] == {"host_ddr": 4 * GIB}
    assert placed.bytes["optimizer_variance"] == {"cxl0": 4 * GIB}
    assert placed.bytes["experts"] == {"gpu.hbm": 6 * GIB}
    with pytest.raises(SimError, match="name 'optimizer' instead"):
        place(parse_placement("optimizer_master=host_ddr"), {"optimizer": GIB}, tiers, "gpu.hbm")


# --- errors -------------------------------------------------------------------------------------

def _error(*args) -> str:
    with pytest.raises(SimError) as err:
        place(*args)
    text = str(err.value)
    assert "\n" not in text
    return text


def test_overflow_names_class_tier_and_bytes():
    tiers = _rooms(gpu_hbm=48, host_ddr=512)
    assert _error(None, {"weights": 40 * GIB, "kv_cache": 20 * GIB}, tiers, "gpu.hbm") == (
        "placement: kv_cache needs 12.0 GiB more on gpu.hbm "
        "(capacity 48.0 GiB, 40.0 GiB taken by weights)")
    # explicit: 30% of 120 GiB = 36 GiB of weights, 20 GiB of KV cache already home
    spec = parse_placement("weights=gpu.hbm:0.3,host_ddr")
    assert _error(spec, {"weights": 120 * GIB, "kv_cache": 20 * GIB}, tiers, "gpu.hbm") == (
        "placement: weights needs 8.0 GiB more on gpu.hbm "
        "(capacity 48.0 GiB, 20.0 GiB taken by kv_cache)")
    spec = parse_placement("priority:weights,optimizer>gpu.hbm,host_ddr")
    assert _error(spec, {"weights": 300 * GIB, "optimizer": 300 * GIB}, tiers, "gpu.hbm") == (
        "placement: optimizer needs 40.0 GiB more on gpu.hbm then host_ddr "
        "(capacity 560.0 GiB, 300.0 GiB taken by weights)")


def test_unknown_tier_lists_the_known_ones():
    tiers = _rooms(gpu_hbm=48, host_ddr=512)
    assert _error(parse_placement("weights=host_dram"), {"weights": GIB}, tiers, "gpu.hbm") == (
        "placement: unknown tier 'host_dram' (did you mean 'host_ddr'?); "
        "known tiers: gpu.hbm, host_ddr")
    assert _error(parse_placement("priority:weights>cxl*"), {"weights": GIB}, tiers,
                  "gpu.hbm") == "placement: no tier matches 'cxl*'; known tiers: gpu.hbm, host_ddr"
    assert "home tier 'gpu0.hbm' is not among the tiers" in _error(None, {}, tiers, "gpu0.hbm")


def test_explicit_fractions_over_100_percent():
    tiers = _rooms(gpu_hbm=48, host_ddr=512)
    spec = PlacementSpec(policy="explicit", fractions={"weights": {"gpu.hbm": 0.7,
                                                                   "host_ddr": 0.5}})
    assert _error(spec, {"weights": GIB}, tiers, "gpu.hbm") == (
        "placement: explicit fractions of weights sum to 1.2 (120%), expected 1")
    with pytest.raises(SimError, match=r"^--placement: fractions of weights sum to 1\.2 \(more "
                                       r"than 100%\) before 'c' takes the rest"):
        parse_placement("weights=a:0.7,b:50%,c")


def test_bad_demands():
    tiers = _rooms(gpu_hbm=48)
    assert "unknown tensor class 'kv' (did you mean 'kv_cache'?)" in _error(
        None, {"kv": 1.0}, tiers, "gpu.hbm")
    assert "demands.weights: expected finite bytes >= 0" in _error(
        None, {"weights": -1.0}, tiers, "gpu.hbm")


# --- schema -------------------------------------------------------------------------------------

@pytest.mark.parametrize("data,message", [
    ({"policy": "explicit", "fractions": {"weights": {"gpu.hbm": 0.5, "host_ddr": 0.4}}},
     "s.yaml: placement.fractions.weights: fractions sum to 0.9, expected 1 "
     "(gpu.hbm: 0.5, host_ddr: 0.4)"),
    ({"policy": "explicit", "fractions": {"weigths": {"gpu.hbm": 1}}},
     "s.yaml: placement.fractions.weigths: unknown tensor class 'weigths' (did you mean "
     "'weights'?)"),
    ({"policy": "explicit", "fractions": {"weights": {"gpu.hbm": 1.5}}},
     "s.yaml: placement.fractions.weights.gpu.hbm: expected a value <= 1, got 1.5"),
    ({"policy": "explicit", "fractions": {"weights": {"gpu.hbm": -0.5, "host_ddr": 1.5}}},
     "s.yaml: placement.fractions.weights.gpu.hbm: expected a value >= 0, got -0.5"),
    ({"policy": "explicit", "tiers": ["a"]},
     "s.yaml: placement.tiers: not used by policy explicit (it takes fractions)"),
    ({"policy": "priorty", "tiers": ["a"]},
     "s.yaml: placement.policy: expected one of explicit, priority, interleave, got 'priorty' "
     "(did you mean 'priority'?)"),
    ({"policy": "priority", "order": [{"classes": ["weights"], "tiers": ["a"]},
                                      {"classes": ["kv_cache", "weights"], "tiers": ["b"]}]},
     "s.yaml: placement.order[1].classes[1]: 'weights' is already placed by order[0]"),
    ({"policy": "priority", "order": [{"classes": ["weights"], "tiers": ["a", [1, 2]]}]},
     "s.yaml: placement.order[0].tiers[1]: expected a tier name or a non-empty list of tier "
     "names (an interleave group), got [1, 2]"),
    ({"policy": "interleave", "tiers": ["a"], "classes": ["optimiser"]},
     "s.yaml: placement.classes[0]: unknown tensor class 'optimiser' (did you mean "
     "'optimizer'?)"),
    ({"policy": "interleave", "tiers": ["a"], "page_size": "1.5 B"},
     "s.yaml: placement.page_size: expected a whole number of bytes, got 1.5 B"),
    ({"policy": "interleave"}, "s.yaml: placement.tiers: policy interleave needs tiers"),
])
def test_schema_errors_are_one_line_and_name_the_field(data, message):
    with pytest.raises(SpecError) as err:
        _spec(data)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_schema_check_arch_names_components():
    spec = _spec({"policy": "explicit", "fractions": {"weights": {"gpu.hbm": 0.5, "cxl1": 0.25,
                                                                  "hots_ddr": 0.25}}})
    comps = {name: SimpleNamespace(kind=kind) for name, kind in (
        ("gpu", "device"), ("nvswitch", "switch"), ("host_ddr", "memory"), ("cxl", "memory"))}
    arch = SimpleNamespace(sections={"components": comps})
    assert spec.check_arch(arch) == (
        "placement.fractions.weights",
        "tier 'hots_ddr' names no memory-holding component of the system (did you mean "
        "'host_ddr'?); components: gpu, host_ddr, cxl")
    spec = _spec({"policy": "interleave", "tiers": ["nvswitch", "cxl*"]})
    assert spec.check_arch(arch)[0] == "placement.tiers[0]"


def test_a_sourced_section_cites_every_leaf():
    ctx = BuildContext(file="s.yaml")
    spec = build_any(PlacementSpec, {
        "source": "assumption: FlexGen's OPT-30B policy", "policy": "explicit",
        "fractions": {"weights": {"gpu.hbm": 0.5, "host_ddr": 0.5}}}, ctx, "placement")
    assert set(leaf_paths(spec, "placement")) == set(ctx.provenance) == {
        "placement.policy", "placement.fractions.weights.gpu.hbm",
        "placement.fractions.weights.host_ddr"}
    assert dump(spec, {k[len("placement."):]: v for k, v in ctx.provenance.items()})[
        "policy"] == {"value": "explicit", "source": "assumption: FlexGen's OPT-30B policy"}
    assert spec.check_arch(SimpleNamespace(sections={})) is None


def test_defaults_and_class_list():
    spec = _spec({"policy": "interleave", "tiers": ["a", "b"]})
    assert spec.page_size is None and spec.page_bytes == 4096.0 and spec.classes is None
    assert TENSOR_CLASSES[:5] == ("weights", "kv_cache", "activations", "gradients", "optimizer")


# --- grammar ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "explicit:weights=gpu.hbm:0.5,host_ddr:0.5;kv_cache=gpu.hbm:1",
    "priority:optimizer,weights,activations,gradients>host_ddr,cxl*",
    "priority:optimizer>host_ddr|cxl0|cxl1;weights,kv_cache>gpu.hbm,host_ddr",
    "interleave:host_ddr,cxl0,cxl1",
    "interleave[optimizer,gradients]:host_ddr,cxl0;page_size=2MiB",
    "interleave:cxl[01];page_size=64KiB",
])
def test_format_parse_round_trip(text):
    spec = parse_placement(text)
    assert format_placement(spec) == text
    assert parse_placement(format_placement(spec)) == spec


def test_parse_forms_build_the_same_spec_as_yaml():
    assert parse_placement("weights=gpu.hbm:0.25,host_ddr") == parse_placement(
        "explicit:weights=gpu.hbm:25%,host_ddr:75%")
    assert parse_placement(" priority: optimizer > host_ddr , cxl0|cxl1 ") == _spec(
        {"policy": "priority",
         "order": [{"classes": ["optimizer"], "tiers": ["host_ddr", ["cxl0", "cxl1"]]}]})
    assert parse_placement("interleave[optimizer]:a,b;page_size=2 MiB") == _spec(
        {"policy": "interleave", "tiers": ["a", "b"], "classes": ["optimizer"],
         "page_size": "2 MiB"})


def test_parse_yaml_file(tmp_path):
    path = tmp_path / "place.yaml"
    path.write_text("placement:\n  policy: explicit\n  fractions:\n"
                    "    weights: {gpu.hbm: 0.5, host_ddr: 0.5}\n")
    assert parse_placement(str(path)) == parse_placement("weights=gpu.hbm:0.5,host_ddr:0.5")
    path.write_text("placement:\n  policy: explicit\n  fractions:\n"
                    "    weights: {gpu.hbm: 0.5, host_ddr: 0.6}\n")
    with pytest.raises(SimError) as err:
        parse_placement(str(path))
    assert str(err.value) == (f"--placement: {path}: placement.fractions.weights: fractions sum "
                              "to 1.1, expected 1 (gpu.hbm: 0.5, host_ddr: 0.6)")
    path.write_text("policy: explicit\n")
    with pytest.raises(SimError, match=r"expected a top-level 'placement:' mapping"):
        parse_placement(str(path))
    with pytest.raises(SimError, match=r"^--placement: .*missing\.yaml: file not found$"):
        parse_placement(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("text,message", [
    ("", "--placement: empty argument; expected CLASS=TIER[:FRACTION]"),
    ("priorty:weights>a", "--placement: unknown policy 'priorty' (did you mean 'priority'?)"),
    ("priority:weights", "--placement: priority entry 'weights' has no single '>'; expected "
                         "priority:CLASS,...>TIER[|TIER...],..."),
    ("weights=a,b", "--placement: two tiers without a fraction in 'weights=a,b'"),
    ("weights=a:half", "--placement: bad fraction 'half' in 'weights=a:half' (a number like 0.5 "
                       "or 50%)"),
    ("weights=gpu hbm", "--placement: bad tier name 'gpu hbm' in 'weights=gpu hbm'"),
    ("weights=a;weights=b", "--placement: class 'weights' given twice"),
    ("priority[weights]:a", "--placement: 'priority[...]' takes no class list"),
    ("interleave:a;b", "--placement: interleave takes one tier list, got 2"),
    ("interleave:a;page_size=4 parsecs", "--placement: page_size: unknown unit 'parsecs'"),
    ("kv=gpu.hbm", "--placement: placement.fractions.kv: unknown tensor class 'kv' (did you "
                   "mean 'kv_cache'?)"),
])
def test_bad_text_is_one_line_naming_placement(text, message):
    with pytest.raises(SimError) as err:
        parse_placement(text)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_placement_is_deterministic():
    tiers = _rooms(gpu_hbm=10, a=3, b=3, c=3)
    spec = parse_placement("priority:weights,optimizer>gpu.hbm,a|b|c")
    demands = {"optimizer": 7.3 * GIB, "weights": 9.9 * GIB}
    first = place(spec, demands, tiers, "gpu.hbm")
    assert isinstance(first, Placement)
    assert place(spec, dict(demands), dict(tiers), "gpu.hbm") == first
