"""MoE routing from a per-expert token-count file (``--expert-counts FILE``)."""

import pytest

from workloads.errors import WorkloadError
from workloads.routing import expert_token_counts, load_expert_counts
from xpusim.cli import main


def test_counts_follow_the_weights_by_hand():
    assert expert_token_counts(100, 4, 1, weights=(2, 1, 1, 0)) == [50, 25, 25, 0]
    # top-2 of 10 tokens, all load on expert 0: it takes its 10, the unloaded share the rest
    assert expert_token_counts(10, 4, 2, weights=(1, 0, 0, 0)) == [10, 4, 3, 3]


def test_zipf_weights_reproduce_expert_skew():
    zipf = tuple((k + 1) ** -1.2 for k in range(8))
    for tokens in (7, 64, 1000):
        assert expert_token_counts(tokens, 8, 2, weights=zipf) == \
            expert_token_counts(tokens, 8, 2, 1.2)


def test_file_formats(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("expert,tokens\n1,30\n0,10\n")
    assert load_expert_counts(str(a), 2) == (10.0, 30.0)
    b = tmp_path / "b.txt"
    b.write_text("5\n7\n\n9\n")
    assert load_expert_counts(str(b)) == (5.0, 7.0, 9.0)


@pytest.mark.parametrize("text,needle", [
    ("tokens\n1\nx\n", "row 3: tokens"),
    ("tokens\n1\n-2\n", "row 3: tokens"),
    ("count\n1\n2\n", "header"),
    ("expert,tokens\n0,1\n2,1\n", r"missing \[1\]"),
    # a huge index (found by fuzzing) is a gap, not a range of 10^23 to list
    ("expert,tokens\n0,1\n99999999999999999999999,1\n", r"experts must be 0..1 .*missing \[1\]"),
    ("expert,tokens\n0,1\n0,1\n", "row 3: expert"),
    ("tokens\n0\n0\n", "all counts are 0"),
    ("1\n2\n3\n", "lists 3 experts, the model has 8"),
])
def test_bad_files_name_file_row_and_field(tmp_path, text, needle):
    f = tmp_path / "c.csv"
    f.write_text(text)
    with pytest.raises(WorkloadError, match=needle) as exc:
        load_expert_counts(str(f), 8 if "lists" in needle else None)
    assert str(f) in str(exc.value) and "\n" not in str(exc.value)


def test_cli_hot_experts_straggle_under_expert_parallelism(tmp_path, capsys):
    """All of Mixtral's routed tokens on two experts (8 x 256 prompt tokens, top-2: each takes
    its 2048-token cap). With --ep 8 the two devices holding them run 4x the rows of uniform
    routing's 512 per expert and hold up the combine: prefill much slower. Without expert
    parallelism a decode step reads only 2 of the 8 experts' weights: faster. A uniform file
    equals uniform routing (Zipf skew ~0)."""
    import json

    hot, flat = tmp_path / "hot.csv", tmp_path / "flat.csv"
    hot.write_text("tokens\n1\n1\n0\n0\n0\n0\n0\n0\n")
    flat.write_text("tokens\n" + "1\n" * 8)
    base = ["run", "--arch", "dgx-h100", "--model", "mixtral-8x7b", "--tp", "8", "--batch", "8",
            "--prompt", "256", "--gen", "2", "--json", "--quiet"]

    def run(*extra):
        assert main(base + list(extra)) == 0
        return json.loads(capsys.readouterr().out)

    hot_ep, flat_ep = (run("--ep", "8", "--expert-counts", str(f)) for f in (hot, flat))
    assert hot_ep["ttft_s"] > 1.5 * flat_ep["ttft_s"]
    hot_1, flat_1 = (run("--expert-counts", str(f)) for f in (hot, flat))
    assert hot_1["tpot_s"] < 0.75 * flat_1["tpot_s"]
    assert flat_1["ttft_s"] == pytest.approx(run("--expert-skew", "0.000001")["ttft_s"],
                                             rel=1e-3)


def test_cli_errors(tmp_path, capsys):
    f = tmp_path / "c.csv"
    f.write_text("tokens\n1\n")
    assert main(["run", "--model", "mixtral-8x7b", "--expert-counts", str(f)]) == 2
    assert "the model has 8" in capsys.readouterr().err
    assert main(["run", "--model", "llama2-7b", "--expert-counts", str(f)]) == 2
    assert "has no experts" in capsys.readouterr().err
    f.write_text("tokens\n" + "1\n" * 8)
    assert main(["run", "--model", "mixtral-8x7b", "--expert-counts", str(f),
                 "--expert-skew", "1"]) == 2
    assert "not both" in capsys.readouterr().err
