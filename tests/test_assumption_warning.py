"""A run names how many of the arch's parameters are assumptions (one line on stderr)."""

import re

from arch import load_arch
from xpusim.cli import main

RUN = ["run", "--model", "gpt2-small", "--batch", "1", "--prompt", "16", "--gen", "2", "--json"]


def _count(err: str) -> int:
    m = re.search(r"warning: (\d+) of \d+ parameters of '[^']+' are assumptions", err)
    assert m, err
    return int(m.group(1))


def test_assumed_parameters_are_counted(tmp_path, capsys):
    assert main([*RUN, "--arch", "h100"]) == 0
    base = _count(capsys.readouterr().err)
    # two published values replaced by stated assumptions: the count grows by exactly two
    f = tmp_path / "guess.yaml"
    f.write_text("name: guess\ntype: gpu\nextends: h100\ngpu:\n"
                 "  sm_count: {value: 120, source: \"assumption: a binned die\"}\n"
                 "  clock: {value: 1.5 GHz, source: \"assumption: power-capped clock\"}\n")
    assert not {"gpu.sm_count", "gpu.clock"} & set(load_arch("h100").assumptions())
    assert main([*RUN, "--arch", str(f)]) == 0
    err = capsys.readouterr().err
    assert _count(err) == base + 2 and err.count("\n") == 1


def test_quiet_silences_the_warning(capsys):
    assert main([*RUN, "--arch", "h100", "--quiet"]) == 0
    assert "assumptions" not in capsys.readouterr().err
