"""Serving workloads: request arrivals and lengths (synthetic or a replayed trace).

A workload is a :class:`Requests` table (arrival time in seconds from the start, prompt tokens,
output tokens, and the shared-prefix group of each request). Arrivals are

* Poisson at a rate, or a piecewise-constant rate schedule ``"5@600s,10@600s"`` (rates in
  requests/s, each held for its duration; the last segment may be open-ended: ``"5@600s,10"``);
* bursty: gamma-distributed inter-arrival times with coefficient of variation ``cv``
  (``cv = 1`` is Poisson; larger is burstier), at the same mean rate;
* replayed from a CSV trace: the Azure LLM inference traces 2023 by name (``azure-code``,
  ``azure-conv``: ``TIMESTAMP,ContextTokens,GeneratedTokens``) or any CSV with those columns or
  ``arrival_s,prompt_tokens,output_tokens``.

Lengths are fixed (``"512"``) or a distribution: ``uniform:LO:HI``, ``zipf:S:LO:HI`` (Zipf
exponent ``S`` over ``LO..HI``), ``lognormal:MEAN:SIGMA`` (mean tokens, sigma of the log),
or a file of lengths (one integer per line, sampled with replacement). Everything is drawn from
one seeded generator. Bad input raises :class:`WorkloadError` naming the file, row and field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workloads.errors import WorkloadError

#: trace names and their files under the reference folder
TRACES = {"azure-code": "serving/azure_llm_trace_code_2023.csv",
          "azure-conv": "serving/azure_llm_trace_conv_2023.csv"}
#: accepted column sets of a trace CSV: (arrival, prompt, output)
TRACE_COLUMNS = (("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
                 ("arrival_s", "prompt_tokens", "output_tokens"))
MAX_TOKENS = 2**31 - 1
#: most requests one workload may generate (a run of this size takes hours)
MAX_REQUESTS = 10_000_000
#: most distinct values of a Zipf length distribution (its weights are tabulated)
MAX_ZIPF_VALUES = 2**22


@dataclass
class Requests:
    """Arrival time (s, from the start, non-decreasing), prompt and output tokens per request;
    ``group`` is the shared system prompt a request starts with (-1: none) and ``prefix`` its
    length in tokens (0 without one; the prefix is part of ``prompt``)."""

    arrival_s: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    group: np.ndarray
    prefix: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.arrival_s)

    @staticmethod
    def build(arrival_s, prompt, output, source: str = "", group=None,
              prefix=None) -> Requests:
        n = len(arrival_s)
        return Requests(np.asarray(arrival_s, float), np.asarray(prompt, np.int64),
                        np.asarray(output, np.int64),
                        np.full(n, -1, np.int64) if group is None else np.asarray(group, np.int64),
                        np.zeros(n, np.int64) if prefix is None else np.asarray(prefix, np.int64),
                        source)


# --- rates and arrivals ------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|min|h)?\s*$")
_SCALE = {"ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str, option: str) -> float:
    """Seconds from ``'300s'``, ``'5min'``, ``'1h'``, ``'250ms'`` or a bare number of seconds."""
    m = _DURATION.match(str(text))
    if not m:
        raise WorkloadError("", option, f"expected a duration such as 300s, 5min or 1h, "
                                        f"got '{str(text)[:40]}'")
    value = float(m.group(1)) * _SCALE[m.group(2)]
    if not math.isfinite(value) or value <= 0:
        raise WorkloadError("", option, f"expected a positive duration, got '{text}'")
    return value


def parse_rate_schedule(text: str, option: str = "--rate") -> list[tuple[float, float]]:
    """``"5@600s,10@600s"`` -> ``[(5.0, 600.0), (10.0, 600.0)]`` (requests/s, seconds); a
    segment without ``@`` lasts forever (only the last one may)."""
    out: list[tuple[float, float]] = []
    parts = [p.strip() for p in str(text).split(",")]
    for i, part in enumerate(parts):
        rate_s, _, dur_s = part.partition("@")
        try:
            rate = float(rate_s)
        except ValueError:
            raise WorkloadError("", option, f"expected RATE or RATE@DURATION[,...] in "
                                            f"requests/s, got '{part[:40]}'") from None
        if not math.isfinite(rate) or rate <= 0:
            raise WorkloadError("", option, f"expected a rate > 0 requests/s, got '{rate_s}'")
        if dur_s:
            dur = parse_duration(dur_s, option)
        elif i == len(parts) - 1:
            dur = math.inf
        else:
            raise WorkloadError("", option, f"segment {i + 1} ('{part}') needs a duration "
                                            "(RATE@DURATION); only the last may be open-ended")
        out.append((rate, dur))
    return out


#: the coefficients of variation of the gaps accepted: gamma shapes 1/cv^2 from 10^6 to 10^-6
#: (beyond, the shape underflows to 0 or overflows, and the gaps divide by it)
CV_RANGE = (1e-3, 1e3)


def arrival_times(schedule: list[tuple[float, float]], rng: np.random.Generator,
                  n: int | None = None, duration: float | None = None,
                  cv: float = 1.0) -> np.ndarray:
    """Arrival times (s) under a piecewise-constant rate schedule: inter-arrival gaps are
    exponential (``cv = 1``) or gamma with shape ``1/cv^2`` at the segment's mean rate. Stops
    after ``n`` requests, at ``duration`` seconds, or at the schedule's end."""
    if not math.isfinite(cv) or not CV_RANGE[0] <= cv <= CV_RANGE[1]:
        raise WorkloadError("", "--burstiness", f"expected a coefficient of variation in "
                                                f"[{CV_RANGE[0]:g}, {CV_RANGE[1]:g}], got {cv:g}")
    end = sum(d for _, d in schedule)
    if duration is not None:
        end = min(end, duration)
    if n is None and not math.isfinite(end):
        raise WorkloadError("", "--requests", "an open-ended rate needs --requests or --duration")
    expected = 0.0
    t0 = 0.0
    for rate, dur in schedule:
        expected += rate * max(0.0, min(t0 + dur, end) - t0)
        t0 += dur
    if (n is None and expected > MAX_REQUESTS) or (n is not None and n > MAX_REQUESTS):
        raise WorkloadError("", "--requests" if n is not None else "--duration",
                            f"the rate schedule would generate about "
                                              f"{min(expected, n or math.inf):.3g} requests "
                                              f"(limit {MAX_REQUESTS:,}); lower --rate or "
                                              "--duration, or give --requests")
    shape = 1.0 / (cv * cv)
    parts: list[np.ndarray] = []
    count, t0 = 0, 0.0
    for rate, dur in schedule:
        seg_end = min(t0 + dur, end)
        t = t0
        while t < seg_end and (n is None or count < n):
            want = (n - count) if n is not None else rate * (seg_end - t)
            size = int(min(max(16.0, 1.1 * want + 16), 1 << 20))
            gaps = rng.exponential(1.0 / rate, size) if cv == 1.0 else \
                rng.gamma(shape, 1.0 / (rate * shape), size)
            ts = t + np.cumsum(gaps)
            keep = ts[ts < seg_end]
            if n is not None:
                keep = keep[:n - count]
            parts.append(keep)
            count += len(keep)
            t = float(ts[-1])
        t0 = seg_end
        if t0 >= end or (n is not None and count >= n):
            break
    times = np.concatenate(parts) if parts else np.zeros(0)
    return np.asarray(times, float)


# --- lengths -----------------------------------------------------------------------------------


def _int_field(text: str, option: str, what: str, low: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        raise WorkloadError("", option, f"expected {what} (an integer), got '{text[:40]}'") \
            from None
    if value < low or value > MAX_TOKENS:
        raise WorkloadError("", option, f"expected {what} in {low}..{MAX_TOKENS:,}, got {value}")
    return value


def parse_lengths(text: str, option: str) -> tuple[str, tuple]:
    """A length spec -> ``(kind, params)``: ``fixed``, ``uniform``, ``zipf``, ``lognormal``."""
    text = str(text).strip()
    kind, _, rest = text.partition(":")
    args = rest.split(":") if rest else []
    if not rest:
        return "fixed", (_int_field(text, option, "a token count"),)
    if kind == "uniform" and len(args) == 2:
        lo, hi = (_int_field(a, option, "a token count") for a in args)
        if hi < lo:
            raise WorkloadError("", option, f"uniform:LO:HI needs LO <= HI, got {lo} > {hi}")
        return "uniform", (lo, hi)
    if kind == "zipf" and len(args) == 3:
        try:
            s = float(args[0])
        except ValueError:
            s = math.nan
        if not math.isfinite(s) or s <= 0:
            raise WorkloadError("", option, f"zipf:S:LO:HI needs an exponent S > 0, got "
                                            f"'{args[0]}'")
        lo, hi = (_int_field(a, option, "a token count") for a in args[1:])
        if hi < lo:
            raise WorkloadError("", option, f"zipf:S:LO:HI needs LO <= HI, got {lo} > {hi}")
        if hi - lo >= MAX_ZIPF_VALUES:
            raise WorkloadError("", option, f"zipf:S:LO:HI spans at most {MAX_ZIPF_VALUES:,} "
                                            f"values, got {hi - lo + 1:,}")
        return "zipf", (s, lo, hi)
    if kind == "lognormal" and len(args) == 2:
        try:
            mean, sigma = float(args[0]), float(args[1])
        except ValueError:
            mean = sigma = math.nan
        if not (math.isfinite(mean) and 1 <= mean <= MAX_TOKENS and math.isfinite(sigma)
                and 0 <= sigma <= 5):
            raise WorkloadError("", option, "lognormal:MEAN:SIGMA needs 1 <= MEAN <= "
                                            f"{MAX_TOKENS:,} tokens and 0 <= SIGMA <= 5, got "
                                            f"'{rest[:40]}'")
        return "lognormal", (mean, sigma)
    raise WorkloadError("", option, "expected a token count, uniform:LO:HI, zipf:S:LO:HI or "
                                    f"lognormal:MEAN:SIGMA, got '{text[:40]}'")


def sample_lengths(spec: tuple[str, tuple], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` token counts (>= 1) drawn from a parsed length spec."""
    kind, p = spec
    if kind == "fixed":
        return np.full(n, p[0], np.int64)
    if kind == "uniform":
        return rng.integers(p[0], p[1] + 1, size=n).astype(np.int64)
    if kind == "zipf":
        s, lo, hi = p
        k = np.arange(1, hi - lo + 2, dtype=float)
        w = k ** -s
        return (lo + rng.choice(len(k), size=n, p=w / w.sum())).astype(np.int64)
    mean, sigma = p
    mu = math.log(mean) - sigma * sigma / 2  # so that E[X] = mean
    return np.clip(np.rint(rng.lognormal(mu, sigma, size=n)), 1, MAX_TOKENS).astype(np.int64)


def read_length_file(path: str, option: str = "--prompt-file") -> np.ndarray:
    """Token counts from a text file, one positive integer per line (blank lines and ``#``
    comments skipped)."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for i, line in enumerate(fh, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                value = int(text)
            except ValueError:
                raise WorkloadError(path, f"line {i}", f"expected a token count, got "
                                                       f"'{text[:40]}'") from None
            if not 1 <= value <= MAX_TOKENS:
                raise WorkloadError(path, f"line {i}", f"expected a token count >= 1, got "
                                                       f"{value}")
            out.append(value)
    if not out:
        raise WorkloadError(path, option, "no token counts in the file")
    return np.asarray(out, np.int64)


# --- traces ------------------------------------------------------------------------------------


def trace_path(name: str, reference_dir: str | Path | None) -> str:
    """The file of a named trace (``azure-code``, ``azure-conv``) or ``name`` as a path."""
    if name in TRACES:
        if reference_dir is None:
            raise WorkloadError("", "--trace", f"trace '{name}' lives in the reference folder "
                                               "(../shared/reference); set "
                                               "XPUSIM_REFERENCE_DIR or give a CSV path")
        return str(Path(reference_dir) / TRACES[name])
    if not name.endswith(".csv") and "/" not in name and not Path(name).exists():
        raise WorkloadError("", "--trace", f"expected {', '.join(TRACES)} or a CSV path, got "
                                           f"'{name[:60]}'")
    return name


def read_trace(path: str, limit: int | None = None) -> Requests:
    """Arrival times (s from the first row), prompt and output tokens of a trace CSV; rows must
    be in arrival order, lengths >= 1 (prompt) and >= 1 (output)."""
    import pandas as pd

    try:
        head = pd.read_csv(path, nrows=0)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise WorkloadError(path, "", f"not a CSV trace ({str(exc).splitlines()[0][:80]})") \
            from None
    cols = next((c for c in TRACE_COLUMNS if all(x in head.columns for x in c)), None)
    if cols is None:
        have = ", ".join(map(str, head.columns[:6])) or "none"
        missing = [x for x in TRACE_COLUMNS[0] if x not in head.columns]
        raise WorkloadError(path, "header", f"missing column(s) {', '.join(missing)}: expected "
                                            f"{','.join(TRACE_COLUMNS[0])} (or "
                                            f"{','.join(TRACE_COLUMNS[1])}), got {have}")
    try:
        df = pd.read_csv(path, usecols=list(cols), nrows=limit, dtype=str,
                         keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise WorkloadError(path, "", f"unreadable CSV ({str(exc).splitlines()[0][:80]})") \
            from None
    if not len(df):
        raise WorkloadError(path, "", "the trace has no rows")
    t_col, p_col, o_col = cols
    if t_col == "TIMESTAMP":
        stamps = pd.to_datetime(df[t_col], errors="coerce", format="ISO8601")
        if stamps.isna().any():  # other layouts, element by element
            stamps = pd.to_datetime(df[t_col], errors="coerce", format="mixed")
        bad = stamps.isna().to_numpy()
        arrival = (stamps - stamps.iloc[0]).dt.total_seconds().to_numpy() if not bad.any() \
            else None
    else:
        arrival = pd.to_numeric(df[t_col], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(arrival)
    if bad.any():
        row = int(np.argmax(bad))
        raise WorkloadError(path, f"row {row + 1}: {t_col}", f"expected a "
                            f"{'timestamp' if t_col == 'TIMESTAMP' else 'time in seconds'}, "
                            f"got '{str(df[t_col].iloc[row])[:40]}'")
    lengths = []
    for col in (p_col, o_col):
        vals = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(vals) | (vals != np.floor(vals))
        if bad.any():
            row = int(np.argmax(bad))
            raise WorkloadError(path, f"row {row + 1}: {col}", f"expected an integer token "
                                f"count, got '{str(df[col].iloc[row])[:40]}'")
        bad = (vals < 1) | (vals > MAX_TOKENS)
        if bad.any():
            row = int(np.argmax(bad))
            raise WorkloadError(path, f"row {row + 1}: {col}", f"expected a token count >= 1, "
                                                              f"got {int(vals[row])}")
        lengths.append(vals.astype(np.int64))
    if t_col != "TIMESTAMP" and (arrival < 0).any():
        row = int(np.argmax(arrival < 0))
        raise WorkloadError(path, f"row {row + 1}: {t_col}", f"expected a time >= 0, got "
                                                            f"{arrival[row]}")
    back = np.diff(arrival) < 0
    if back.any():
        row = int(np.argmax(back)) + 1
        raise WorkloadError(path, f"row {row + 1}: {t_col}", f"arrivals must be in time order: "
                            f"row {row + 1} ({arrival[row]:.6g} s) is earlier than row {row} "
                            f"({arrival[row - 1]:.6g} s)")
    return Requests.build(arrival, lengths[0], lengths[1], source=path)


# --- shared prefixes and context limits --------------------------------------------------------


def add_shared_prefix(req: Requests, tokens: int, groups: int,
                      rng: np.random.Generator) -> Requests:
    """Each request starts with one of ``groups`` system prompts of ``tokens`` tokens (drawn
    uniformly): its prompt grows by ``tokens`` and it records the group."""
    if tokens < 1 or groups < 1:
        raise WorkloadError("", "--shared-prefix", "needs TOKENS >= 1 and --prefix-groups >= 1")
    group = rng.integers(0, groups, size=len(req)).astype(np.int64)
    return Requests(req.arrival_s, req.prompt + tokens, req.output, group,
                    np.full(len(req), tokens, np.int64), req.source)


def check_context(req: Requests, max_len: int, model: str, policy: str = "error") -> Requests:
    """Requests whose prompt + output exceed ``max_len`` tokens: ``error`` (one line naming the
    row), ``truncate`` (cut the prompt, then the output, to fit) or ``skip`` (drop them)."""
    total = req.prompt + req.output
    over = total > max_len
    if not over.any():
        return req
    if policy == "error":
        row = int(np.argmax(over))
        where = req.source or "requests"
        raise WorkloadError(where, f"row {row + 1}", f"prompt {int(req.prompt[row]):,} + output "
                            f"{int(req.output[row]):,} tokens exceed {model}'s context of "
                            f"{max_len:,} (--max-model-len); --over-context truncate or skip "
                            "handles such requests")
    if policy == "skip":
        keep = ~over
        return Requests(req.arrival_s[keep], req.prompt[keep], req.output[keep],
                        req.group[keep], req.prefix[keep], req.source)
    output = np.minimum(req.output, max_len - 1)
    prompt = np.minimum(req.prompt, max_len - output)
    prefix = np.minimum(req.prefix, prompt)
    return Requests(req.arrival_s, prompt, output, req.group, prefix, req.source)


@dataclass(frozen=True)
class RequestSpec:
    """What a serving workload is made of, as ``xpusim serve``'s options and a sweep's
    ``serve:`` section say it (text fields are parsed by :func:`build_requests`).

    ``trace`` is a trace name (``azure-code``, ``azure-conv``) or a CSV path; ``rate`` a rate
    schedule (with a trace: re-timed arrivals); ``duration`` e.g. ``"600s"``; ``requests`` the
    number of requests (0: the schedule or trace decides); ``prompt``/``gen`` length specs;
    ``prompt_file`` a file of prompt lengths; ``over_context`` what to do with a request longer
    than the model's context (:func:`check_context`)."""

    seed: int = 0
    rate: str | None = None
    duration: str | None = None
    requests: int = 0
    trace: str | None = None
    burstiness: float = 1.0
    prompt: str = "512"
    gen: str = "128"
    prompt_file: str | None = None
    shared_prefix: int = 0
    prefix_groups: int = 1
    over_context: str = "error"


def build_requests(spec: RequestSpec, max_len: int, model_name: str,
                   reference_dir: str | Path | None = None) -> Requests:
    """The request table ``spec`` describes, drawn from one generator seeded with ``spec.seed``
    (arrivals, then prompt lengths, then output lengths, then shared-prefix groups), checked
    against the model's context of ``max_len`` tokens. Traces by name are looked up under
    ``reference_dir``."""
    rng = np.random.default_rng(spec.seed)
    duration = parse_duration(spec.duration, "--duration") if spec.duration else None
    if spec.trace:
        req = read_trace(trace_path(spec.trace, reference_dir), limit=spec.requests or None)
        if spec.rate:
            times = arrival_times(parse_rate_schedule(spec.rate), rng, len(req), duration,
                                  spec.burstiness)
            k = len(times)
            req = Requests(times, req.prompt[:k], req.output[:k], req.group[:k],
                           req.prefix[:k], req.source)
        elif duration is not None:
            keep = req.arrival_s < duration
            req = Requests(req.arrival_s[keep], req.prompt[keep], req.output[keep],
                           req.group[keep], req.prefix[keep], req.source)
    else:
        schedule = parse_rate_schedule(spec.rate or "1")
        open_ended = math.isinf(schedule[-1][1])
        n = spec.requests if spec.requests or duration or not open_ended else 100
        times = arrival_times(schedule, rng, n, duration, spec.burstiness)
        if spec.prompt_file:
            pool = read_length_file(spec.prompt_file)
            prompt = pool[rng.integers(0, len(pool), size=len(times))]
        else:
            prompt = sample_lengths(parse_lengths(spec.prompt, "--prompt"), len(times), rng)
        gen = sample_lengths(parse_lengths(spec.gen, "--gen"), len(times), rng)
        req = Requests.build(times, prompt, gen, source="--prompt/--gen")
    if not len(req):
        raise WorkloadError("", "--rate", "no request arrives (raise --duration or --rate)")
    if spec.shared_prefix:
        req = add_shared_prefix(req, spec.shared_prefix, spec.prefix_groups, rng)
    return check_context(req, max_len, model_name, spec.over_context)
