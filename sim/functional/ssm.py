"""``xpusim check`` for a Mamba layer: every op of the traced layer run on the device's numerics
and compared with ``kernels_ref``; the selective scan is the trace's own Einsum cascade,
evaluated Einsum by Einsum in the device's vector compute format
(:mod:`sim.functional.einsum_eval`), against ``kernels_ref.ssm.selective_scan_state`` in float64.

Data (Mamba's initialisation, Gu & Dao 2023 §3.6 and the mamba_ssm package): ``A = -[1..N]`` per
channel (S4D-real), ``D = 1 + 0.1 N(0, 1)``, ``dt_bias`` the inverse softplus of
``dt ~ exp(U(ln 1e-3, ln 1e-1))``, conv taps U(-a, a) with variance 1/d_conv and bias
0.1 N(0, 1); a decode step's carried SSM state N(0, 1/4) and conv rows N(0, 1). The conv is
causal (zero rows before the prompt). Allowance formulas sit next to each handler.
"""

from __future__ import annotations

import numpy as np

import kernels_ref.elementwise as ref_ew
from kernels_ref.dtypes import quantize
from kernels_ref.ssm import selective_scan_state
from sim.functional.einsum_eval import eval_cascade
from sim.functional.formats import Rounder
from sim.functional.layer import _LayerRun
from sim.functional.tolerance import TRANSCENDENTAL_ULPS
from workloads.einsum import Cascade, TensorRef
from workloads.trace import Op


def _t(a: np.ndarray) -> np.ndarray:
    """[b, l, c] <-> [b, c, l] (the reference kernel's layout)."""
    return np.ascontiguousarray(np.swapaxes(a, 1, 2))


def scan_inputs(rng: np.random.Generator, channels: int, states: int
                ) -> dict[str, np.ndarray]:
    """The scan's parameters as Mamba initialises them (fp32)."""
    a = -np.tile(np.arange(1, states + 1, dtype=np.float64), (channels, 1))
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), channels))
    bias = dt + np.log(-np.expm1(-dt))  # softplus(bias) = dt
    return {"ssm.A": quantize(a, "fp32"), "ssm.D": quantize(1 + 0.1 * rng.standard_normal(
        channels), "fp32"), "ssm.dt_bias": quantize(bias, "fp32"), "ssm.one": np.array(1.0)}


def run_scan(cascade: Cascade, data: dict[str, np.ndarray], compute: str,
             ulps: float = TRANSCENDENTAL_ULPS, executed: str | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(device output, float64 reference, allowance) of the scan ``cascade`` on ``data``
    (``ssm.*`` tensors in their rank order; ``ssm.state`` the carried state, zero if absent).

    The device value evaluates the cascade with every Einsum's output rounded to ``compute``
    (then to the tensor's datatype); ``executed`` rounds to another format instead while the
    allowance stays that of the declared ``compute`` (a device that computes narrower than it
    declares; the tests use it). Allowance, first order in the unit roundoff ``u``, with
    ``s = sigmoid(delta + bias)``: the softplus ``log(exp(v) + 1)`` is off by at most
    ``e_dt = (T + 2) u s + 2 u + T u dt`` absolutely (the rounded ``+ 1`` costs ``u``
    absolutely, so a tiny ``dt`` is only that accurate); ``dA = exp(dt A)`` relatively by
    ``|A| e_dt + u |dt A| + (T + 1) u``; ``dBx`` absolutely by ``e_dt |B x| + 2 u |dBx|``; the
    recurrence ``H = dA H' + dBx`` carries ``E_H = dA E_H' + E_dA |H'| + u |dA H'| + E_dBx +
    u |H|``; ``y = sum_n H C`` adds ``sum |C| E_H + N u sum |C H|``; ``+ D x`` and the gate
    ``silu(z)`` (T + 2 ulps) follow."""
    u = Rounder(compute).unit_roundoff()

    def round_out(values: np.ndarray, t: TensorRef) -> np.ndarray:
        out = quantize(values, executed or compute)
        return quantize(out, t.dtype) if t.dtype != compute else out

    x, delta, z = data["ssm.x"], data["ssm.delta"], data["ssm.z"]
    if "ssm.state" not in data and any(t.name == "ssm.state" for t in cascade.external_inputs):
        data = {**data, "ssm.state": np.zeros((x.shape[0], x.shape[2], data["ssm.A"].shape[1]))}
    dev = eval_cascade(cascade, data, round_out)["ssm.out"]
    bm, cm, a, d, bias = (data[k] for k in ("ssm.B", "ssm.C", "ssm.A", "ssm.D", "ssm.dt_bias"))
    b, length, c = x.shape
    n = a.shape[1]
    h0 = data.get("ssm.state", np.zeros((b, c, n)))
    ref, _ = selective_scan_state(_t(x), _t(delta), a, _t(bm), _t(cm), d, _t(z), bias, True,
                                  np.ascontiguousarray(h0))
    ref = _t(ref)
    # allowance (see the docstring), vectorised over b, c, n and stepped over l
    v = delta + bias
    dt = np.logaddexp(0.0, v)
    sig = 1.0 / (1.0 + np.exp(-v))
    e_dt = (ulps + 2) * u * sig + 2 * u + ulps * u * dt
    eh = np.zeros((b, c, n))
    h = h0.astype(np.float64).copy()
    e_y = np.zeros((b, length, c))
    mag_y = np.zeros((b, length, c))
    for i in range(length):
        dta = dt[:, i, :, None] * a[None]
        da = np.exp(dta)
        e_da = da * (np.abs(a)[None] * e_dt[:, i, :, None] + u * np.abs(dta) + (ulps + 1) * u)
        bx = bm[:, i, None, :] * x[:, i, :, None]
        dbx = dt[:, i, :, None] * bx
        e_dbx = e_dt[:, i, :, None] * np.abs(bx) + 2 * u * np.abs(dbx)
        h_new = da * h + dbx
        eh = da * eh + e_da * np.abs(h) + u * np.abs(da * h) + e_dbx + u * np.abs(h_new)
        h = h_new
        ca = np.abs(cm[:, i, None, :])
        e_y[:, i] = (ca * eh).sum(-1) + n * u * (ca * np.abs(h)).sum(-1)
        mag_y[:, i] = (ca * np.abs(h)).sum(-1)
    dx = np.abs(d * x)
    gate = np.abs(z / (1.0 + np.exp(-z)))
    e_yd = e_y + u * dx + u * (mag_y + dx)
    allow = (e_yd * gate + (ulps + 2) * u * (mag_y + dx) * gate + u * np.abs(ref)) * 1.01
    return dev, ref, allow


class MambaRun(_LayerRun):
    """The ops of one Mamba layer (see :class:`sim.functional.layer._LayerRun`)."""

    def _seq(self, a: np.ndarray) -> np.ndarray:
        """[t, c] rows (request-major) as [b, l, c]."""
        return a.reshape(self.b, self.s, a.shape[-1])

    def _op_ln_mamba(self, op: Op, checked: bool) -> tuple:
        return self._norm(op, "x", "h", checked)

    def _op_in_proj(self, op: Op, checked: bool) -> tuple:
        res = self._linear(op, self.env["h"], checked)
        self.env["xz"] = res[0][0]
        return res

    def _op_conv1d(self, op: Op, checked: bool) -> tuple:
        """Causal depthwise conv: out[l] = sum_k w[k] x[l - K + 1 + k]. Allowance: K products
        and K - 1 sums in the compute format, ``(K + 1) u sum |w x|``."""
        m = self.m
        di, k = m.d_inner, m.d_conv
        xs = self._seq(self.env["xz"][:, :di])
        if "conv_w" not in self.weights:
            rng = np.random.default_rng([self.spec.seed, 3])
            w = quantize(rng.uniform(-1, 1, (di, k)) * np.sqrt(3.0 / k), self.dt)
            self.weights["conv_w"] = {"w": w, "bias": quantize(0.1 * rng.standard_normal(di),
                                                               self.dt)}
        w = self.weights["conv_w"]["w"]
        past = self._act((self.b, k - 1, di)) if self.phase == "decode" else \
            np.zeros((self.b, k - 1, di))
        xp = np.concatenate([past, xs], axis=1)
        self.env["conv_window"] = xp[:, -k:]
        windows = np.stack([xp[:, j:j + self.s] for j in range(k)], axis=-1)  # b l c k
        ref = np.einsum("blck,ck->blc", windows, w)
        cc = self.vec.compute
        acc = np.zeros_like(ref)
        for j in range(k):
            acc = quantize(acc + quantize(windows[..., j] * w[:, j], cc), cc)
        out_dtype = op.compute.output.dtype
        y = quantize(acc, out_dtype)
        self.env["conv"] = y.reshape(self.t, di)
        allow = (k + 1) * self.u_c * np.einsum("blck,ck->blc", np.abs(windows), np.abs(w))
        return y.reshape(self.t, di), ref.reshape(self.t, di), allow.reshape(self.t, di), \
            out_dtype, {"unit": "vector", "compute": cc}

    def _op_conv_state(self, op: Op, checked: bool) -> tuple:
        """The decode step's conv state shift: a copy, exact."""
        rows = self.env["conv_window"][:, 1:]
        y = rows.reshape(self.b, -1)
        return y, y.copy(), np.zeros_like(y), op.compute.output.dtype, {"unit": "memory"}

    def _op_conv_act(self, op: Op, checked: bool) -> tuple:
        """silu(conv + bias). Allowance: the add (u |v|, silu' <= 1.1) and silu (T + 1 ulps)."""
        v = self.env["conv"] + self.weights["conv_w"]["bias"]
        ref = ref_ew.silu(v)
        cc = self.vec.compute
        vr = quantize(v, cc)
        y = quantize(quantize(vr / (1.0 + np.exp(-vr)), cc), self.dt)
        self.env["u"] = y
        allow = (1.1 * self.u_c * np.abs(v) + (TRANSCENDENTAL_ULPS + 1) * self.u_c * np.abs(ref))
        return y, ref, allow * 1.01, self.dt, {"unit": "vector", "compute": cc}

    def _op_x_proj(self, op: Op, checked: bool) -> tuple:
        res = self._linear(op, self.env["u"], checked)
        self.env["xdbl"] = res[0][0]
        return res

    def _op_dt_norm(self, op: Op, checked: bool) -> tuple:
        """The RMSNorm of dt (Falcon-Mamba: without a gain; Jamba: with one)."""
        self.env["dt_in"] = np.ascontiguousarray(self.env["xdbl"][:, :self.m.dt_rank])
        return self._mixer_norm(op, "dt_in", "dt_normed", checked)

    def _op_bc_norm(self, op: Op, checked: bool) -> tuple:
        """The RMSNorms of B and C, the rows of both as one [2t, d_state] table."""
        r, n = self.m.dt_rank, self.m.d_state
        x = self.env["xdbl"]
        self.env["bc_in"] = np.concatenate([x[:, r:r + n], x[:, r + n:r + 2 * n]], axis=0)
        return self._mixer_norm(op, "bc_in", "bc_normed", checked)

    def _mixer_norm(self, op: Op, src: str, dst: str, checked: bool) -> tuple:
        """``_norm`` of a mixer's own RMSNorm, its gain ones where the model's has none."""
        if self.m.ssm_norms == "plain" and f"g_{op.name}" not in self.env:
            width = self.env[src].shape[1]
            self.env[f"g_{op.name}"], self.env[f"b_{op.name}"] = np.ones(width), np.zeros(width)
        return self._norm(op, src, dst, checked)

    def _op_dt_proj(self, op: Op, checked: bool) -> tuple:
        dt = self.env.get("dt_normed")
        res = self._linear(op, dt if dt is not None else np.ascontiguousarray(
            self.env["xdbl"][:, :self.m.dt_rank]), checked)
        self.env["delta"] = res[0][0]
        return res

    def _op_ssm_scan(self, op: Op, checked: bool) -> tuple:
        m = self.m
        r, n, di = m.dt_rank, m.d_state, m.d_inner
        if "scan" not in self.weights:
            self.weights["scan"] = scan_inputs(np.random.default_rng([self.spec.seed, 4]), di, n)
        xdbl = self.env["xdbl"]
        normed = self.env.get("bc_normed")   # the normed B and C, where the mixer norms them
        bb, cc = (normed[:self.t], normed[self.t:]) if normed is not None else \
            (xdbl[:, r:r + n], xdbl[:, r + n:])
        data = {**self.weights["scan"], "ssm.x": self._seq(self.env["u"]),
                "ssm.delta": self._seq(self.env["delta"]),
                "ssm.z": self._seq(self.env["xz"][:, di:]),
                "ssm.B": self._seq(bb), "ssm.C": self._seq(cc)}
        if self.phase == "decode":
            data["ssm.state"] = quantize(0.5 * self.rng.standard_normal((self.b, di, n)), "fp32")
        dev, ref, allow = run_scan(op.compute, data, self.vec.compute)
        out_dtype = op.compute.einsums[-2].output.dtype  # ssm.out (the state is last)
        self.env["ssm_out"] = dev.reshape(self.t, di)
        return dev.reshape(self.t, di), ref.reshape(self.t, di), allow.reshape(self.t, di), \
            out_dtype, {"unit": "vector", "compute": self.vec.compute, "mapping": "einsum-cascade"}

    def _op_out_proj(self, op: Op, checked: bool) -> tuple:
        res = self._linear(op, self.env["ssm_out"], checked)
        self.env["o"] = res[0][0]
        return res

    def _op_residual(self, op: Op, checked: bool) -> tuple:
        return self._add(self.env["x"], self.env["o"], "out")

    def _op_residual_mamba(self, op: Op, checked: bool) -> tuple:
        """A hybrid decoder's (Jamba's) Mamba-1 layer: the mixer's residual, its MLP next."""
        return self._add(self.env["x"], self.env["o"], "x2")
