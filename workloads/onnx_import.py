"""An ONNX graph as a trace of Einsum-IR ops (``xpusim run --model model.onnx``).

The graph is one forward pass (phase ``prefill``, step 0): its symbolic input dimensions are
bound to the scenario (a dimension named like ``batch`` to ``--batch``, like ``sequence`` to
``--prompt``), ONNX shape inference gives every tensor its shape, and each node becomes an op
with the node's shapes and datatypes and dependencies along the graph's edges:

* ``MatMul``, ``Gemm``, ``Einsum`` -> contractions (``matmul``; a weight operand is an
  initializer, an activation x activation product is attention's QK^T or PV);
* ``Softmax`` -> the 3-pass softmax cascade, ``LayerNormalization`` / ``RMSNormalization``
  (and ORT's ``SimplifiedLayerNormalization``) -> the norm cascade, both the same cascades the
  config tracer emits; ``Attention`` (opset 23, 4-D Q/K/V) -> the fused attention cascade;
* element-wise ``Add Sub Mul Div Max Min Pow Where`` (broadcast ranks dropped) and unary
  ``Relu Gelu FastGelu Sigmoid Tanh Exp Log Sqrt Reciprocal Neg Abs Erf`` (erf costed as tanh),
  ``Reduce{Mean,Sum,Max,Min}``, ``Cast`` of an activation -> vector ops;
* ``Gather`` from an initializer -> an embedding lookup (``memory``);
* layout changes (``Reshape Transpose Squeeze Unsqueeze Flatten Identity Dropout Split Slice
  Concat Expand``, ``Gather`` of an activation) are renamings of ranks in the IR, not ops;
  nodes whose inputs are all constants (shape arithmetic, masks from ``Range``) fold on the host.

Any other node is a one-line error naming the node and its op type. Layers come from node names
(``/model/layers.3/...``, ``h.3``, ``blocks.3``) when the exporter wrote them, else from the
graph: a norm whose output feeds attention before the next norm starts a layer; ops before the
first layer are layer -1, after the last layer's last residual add the head (``n_layers``). The
last weight contraction that reaches a graph output is the ``lm_head``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from workloads.einsum import Cascade, Einsum, TensorRef, contraction, elementwise
from workloads.errors import WorkloadError
from workloads.models import ModelConfig
from workloads.scenario import Scenario
from workloads.trace import ATTENTION, MATMUL, MEMORY, VECTOR, Op, Trace
from workloads.tracer import layernorm, softmax

MAX_BYTES = 2 * 2**30  # protobuf's own limit for one file
PROBE_TOKENS = (16, 128, 512, 2048, 1)  # sequence lengths tried for the shape summary
BATCH_NAMES = ("batch", "batch_size", "batchsize", "bs", "b", "n")
SEQ_NAMES = ("sequence", "sequence_length", "seq", "seq_len", "seqlen", "s", "tokens",
             "num_tokens", "length", "l", "t")
VIEW_OPS = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Dropout",
            "Split", "Slice", "Concat", "Expand", "Gather")
HOST_OPS = ("Shape", "Constant", "ConstantOfShape", "Range", "Size", "Equal", "Less",
            "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Trilu")
BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Max": "max", "Min": "min",
          "Pow": "mul", "Where": "select"}
UNARY = {"Relu": "relu", "Gelu": "gelu", "FastGelu": "gelu", "Sigmoid": "sigmoid",
         "Tanh": "tanh", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Reciprocal": "recip",
         "Neg": "neg", "Abs": "neg", "Erf": "tanh"}
REDUCE = {"ReduceMean": "add", "ReduceSum": "add", "ReduceMax": "max", "ReduceMin": "min"}
NORMS = {"LayerNormalization": False, "RMSNormalization": True,
         "SimplifiedLayerNormalization": True}
#: ONNX Runtime contrib ops (domain com.microsoft) with the same meaning as ours; ONNX shape
#: inference does not know them, so their output takes the shape of their first input
CONTRIB = ("FastGelu", "Gelu", "SimplifiedLayerNormalization")
SUPPORTED = sorted({"MatMul", "Gemm", "Einsum", "Softmax", "Attention", "Cast", *NORMS, *BINARY,
                    *UNARY, *REDUCE, *VIEW_OPS, *HOST_OPS})
_LAYER_RE = re.compile(r"(?:^|[/._])(?:layers?|h|blocks?|block)[._/](\d+)(?:[/._]|$)")
# ONNX TensorProto element types -> the IR's datatypes (64-bit and unsigned integers, which only
# index, mask or shape, are counted in the IR's nearest width: int64 and uint32/64 as int32)
_DTYPES = {1: "fp32", 10: "fp16", 16: "bf16", 11: "fp64", 3: "int8", 6: "int32", 7: "int32",
           17: "fp8_e4m3", 19: "fp8_e5m2", 2: "int8", 12: "int32", 13: "int32", 9: "int8"}


def _where(node: Any) -> str:
    """How an error names a node: its name, else its first output."""
    return f"node '{node.name or (node.output[0] if node.output else node.op_type)}'"


def _onnx(file: str):
    try:
        import onnx
    except ImportError:
        raise WorkloadError(file, "", "reading ONNX graphs needs the onnx package: "
                                      "pip install 'xpusim[onnx]'") from None
    return onnx


@dataclass
class _Graph:
    """A parsed graph: nodes, initializer shapes and the graph inputs' dimensions."""

    file: str
    proto: Any
    inits: dict[str, tuple[tuple[int, ...], str]]
    inputs: list[tuple[str, list[int | str]]]
    n_params: int = 0
    dims: dict[str, str] = field(default_factory=dict)  # symbolic name -> batch | sequence


def _read(path: str) -> _Graph:
    onnx = _onnx(path)
    p = Path(path)
    if not p.is_file():
        raise WorkloadError(path, "", "file not found")
    if p.stat().st_size > MAX_BYTES:
        raise WorkloadError(path, "", f"file larger than {MAX_BYTES // 2**30} GiB")
    try:
        proto = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # protobuf raises several types on a bad file
        raise WorkloadError(path, "", f"not a readable ONNX model "
                                      f"({type(exc).__name__})") from None
    g = proto.graph
    for node in g.node:
        if node.op_type not in SUPPORTED or node.domain not in ("", "ai.onnx") and not (
                node.domain == "com.microsoft" and node.op_type in CONTRIB):
            raise WorkloadError(path, _where(node),
                                f"unsupported op type '{node.domain + '.' if node.domain else ''}"
                                f"{node.op_type}' (supported: {', '.join(SUPPORTED)})")
    inits: dict[str, tuple[tuple[int, ...], str]] = {}
    params = 0
    for t in g.initializer:
        dtype = _DTYPES.get(t.data_type, "")
        inits[t.name] = (tuple(int(d) for d in t.dims), dtype)
        if t.data_type in (1, 10, 16, 11, 17, 19, 3):  # weights, not shape constants
            params += math.prod(t.dims)
    inputs = []
    dims: dict[str, str] = {}
    for vi in g.input:
        if vi.name in inits:
            continue
        shape = []
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_value"):
                shape.append(int(d.dim_value))
                continue
            name = d.dim_param
            low = name.lower()
            if "past" in low or "total" in low or "cache" in low:
                raise WorkloadError(path, f"input '{vi.name}'", f"symbolic dimension "
                                    f"'{name[:40]}' is a KV-cache length: graphs with past "
                                    "key/value inputs are not supported (export one forward "
                                    "pass without the cache)")
            if low in BATCH_NAMES or "batch" in low:
                dims[name] = "batch"
            elif low in SEQ_NAMES or "seq" in low or "token" in low:
                dims[name] = "sequence"
            else:
                raise WorkloadError(path, f"input '{vi.name}'", f"symbolic dimension "
                                    f"'{name[:40]}' is neither a batch nor a sequence dimension "
                                    "(name it batch or sequence, or give it a fixed size)")
            shape.append(name)
        inputs.append((vi.name, shape))
    return _Graph(path, proto, inits, inputs, params, dims)


def _shapes(graph: _Graph, batch: int, seq: int
            ) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every tensor's (shape, dtype) with the symbolic dimensions bound."""
    onnx = _onnx(graph.file)
    proto = onnx.ModelProto()
    proto.CopyFrom(graph.proto)
    bind = {"batch": batch, "sequence": seq}
    for vi in proto.graph.input:
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value") and d.dim_param in graph.dims:
                d.dim_value = bind[graph.dims[d.dim_param]]
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise WorkloadError(graph.file, "", f"ONNX shape inference failed at batch {batch}, "
                                            f"{seq} tokens ({type(exc).__name__}: {first})"
                            ) from None
    out = dict(graph.inits)
    g = inferred.graph
    for vi in (*g.input, *g.value_info, *g.output):
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        out[vi.name] = (tuple(dims), _DTYPES.get(tt.elem_type, ""))
    return out


class _Builder:
    """Turns nodes into ops (see the module doc)."""

    def __init__(self, graph: _Graph, batch: int, seq: int):
        self.g = graph
        self.file = graph.file
        self.shapes = _shapes(graph, batch, seq)
        self.const: set[str] = set(graph.inits)
        self.producers: dict[str, frozenset[int]] = {}
        self.attn_out: set[str] = set()   # tensors of attention (scores, probabilities)
        self.ops: list[Op] = []
        self.nodes: list[Any] = []          # the node of each op
        self.batch, self.tokens = batch, batch * seq

    def _shape(self, node: Any, name: str) -> tuple[tuple[int, ...], str]:
        shape, dtype = self.shapes.get(name, ((), ""))
        if name not in self.shapes or any(d < 1 for d in shape):
            raise WorkloadError(self.file, _where(node),
                                f"the shape of '{name}' is unknown after shape inference "
                                f"({node.op_type})")
        if not dtype:
            raise WorkloadError(self.file, _where(node),
                                f"'{name}' has a datatype the IR does not model ({node.op_type})")
        return shape, dtype

    def _ref(self, node: Any, name: str, ranks: tuple[str, ...]) -> TensorRef:
        _, dtype = self._shape(node, name)
        role = "weight" if name in self.g.inits else "activation"
        return TensorRef(name, ranks, dtype, role)

    def _emit(self, node: Any, kind: str, op_class: str, compute: Einsum | Cascade,
              name: str = "") -> None:
        deps: set[int] = set()
        for i in node.input:
            deps |= self.producers.get(i, frozenset())
        op = Op(len(self.ops), name or node.name or f"{node.op_type}_{len(self.ops)}", kind,
                "prefill", 0, 0, compute, 1, tuple(sorted(deps)), None, self.tokens,
                self.batch, "", op_class)
        self.ops.append(op)
        self.nodes.append(node)
        for o in node.output:
            self.producers[o] = frozenset((op.id,))

    # --- per node ---------------------------------------------------------------------------
    def node(self, node: Any) -> None:
        ins = [i for i in node.input if i]
        if node.op_type in HOST_OPS or (ins and all(i in self.const for i in ins)):
            self.const.update(node.output)  # folded on the host
            return
        op = node.op_type
        if op in CONTRIB and node.output and node.output[0] not in self.shapes \
                and ins and ins[0] in self.shapes:
            self.shapes[node.output[0]] = self.shapes[ins[0]]  # shape-preserving contrib op
        if op in VIEW_OPS and not (op == "Gather" and node.input[0] in self.g.inits):
            deps = frozenset().union(*(self.producers.get(i, frozenset()) for i in ins))
            for o in node.output:
                self.producers[o] = deps
                if any(i in self.attn_out for i in ins):
                    self.attn_out.add(o)
            return
        handler = getattr(self, "_" + op, None)
        if handler is None:
            if op in BINARY:
                return self._binary(node)
            if op in UNARY:
                return self._unary(node)
            if op in REDUCE:
                return self._reduce(node)
            if op in NORMS:
                return self._norm(node)
        handler(node)

    def _ranks(self, n: int, prefix: str = "d") -> tuple[str, ...]:
        return tuple(f"{prefix}{i}" for i in range(n))

    def _MatMul(self, node: Any) -> None:
        a, b, out = node.input[0], node.input[1], node.output[0]
        sa, _ = self._shape(node, a)
        sb, _ = self._shape(node, b)
        so, _ = self._shape(node, out)
        if len(sa) < 2 or len(sb) < 2:
            raise WorkloadError(self.file, _where(node), "MatMul of a 1-D tensor is "
                                                                  "not supported")
        m, k, n = sa[-2], sa[-1], sb[-1]
        if len(sb) == 2:  # a projection: every leading rank of A is a token rank
            t = math.prod(sa[:-1])
            sizes = {"t": t, "k": k, "n": n}
            e = contraction(node.name or out, self._ref(node, out, ("t", "n")),
                            self._ref(node, a, ("t", "k")), self._ref(node, b, ("k", "n")),
                            sizes)
            cls = "gemm" if b in self.g.inits else "matmul"
        else:
            batch = so[:-2]
            bnames = self._ranks(len(batch), "x")
            sizes = dict(zip(bnames, batch, strict=True))
            sizes.update(m=m, k=k, n=n)

            def keep(shape: tuple[int, ...]) -> tuple[str, ...]:
                lead = shape[:-2]
                off = len(batch) - len(lead)
                return tuple(bnames[off + i] for i, d in enumerate(lead) if d == batch[off + i]
                             and d > 1)
            ra = (*keep(sa), "m", "k")
            rb = (*keep(sb), "k", "n")
            ro = (*tuple(r for r, d in zip(bnames, batch, strict=True) if d > 1), "m", "n")
            e = contraction(node.name or out, self._ref(node, out, ro), self._ref(node, a, ra),
                            self._ref(node, b, rb), sizes)
            cls = "gemm" if b in self.g.inits else "attention"
        if cls == "attention":
            self.attn_out.add(out)
        self._emit(node, MATMUL, cls, e)

    def _Gemm(self, node: Any) -> None:
        attrs = {a.name: a for a in node.attribute}
        ta = attrs["transA"].i if "transA" in attrs else 0
        tb = attrs["transB"].i if "transB" in attrs else 0
        a, b, out = node.input[0], node.input[1], node.output[0]
        sa, _ = self._shape(node, a)
        sb, _ = self._shape(node, b)
        if len(sa) != 2 or len(sb) != 2:
            raise WorkloadError(self.file, _where(node), "Gemm: expected 2-D A and B")
        m, k = (sa[1], sa[0]) if ta else sa
        n = sb[0] if tb else sb[1]
        sizes = {"t": m, "k": k, "n": n}
        e = contraction(node.name or out, self._ref(node, out, ("t", "n")),
                        self._ref(node, a, ("k", "t") if ta else ("t", "k")),
                        self._ref(node, b, ("n", "k") if tb else ("k", "n")), sizes)
        self._emit(node, MATMUL, "gemm", e)
        if len(node.input) > 2 and node.input[2]:  # the bias add C, as its own vector op
            c = node.input[2]
            sc, _ = self._shape(node, c)
            rc = ("n",) if len(sc) == 1 or sc[0] == 1 else ("t", "n")
            bias = elementwise(f"{node.name or out}.bias", self._ref(node, out, ("t", "n")),
                               (self._ref(node, out, ("t", "n")), self._ref(node, c, rc)),
                               sizes, "add")
            self._emit(node, VECTOR, "elementwise", bias, f"{node.name or out}.bias")

    def _Einsum(self, node: Any) -> None:
        eq = next((a.s.decode() for a in node.attribute if a.name == "equation"), "")
        eq = eq.replace(" ", "")
        if "..." in eq or "->" not in eq:
            raise WorkloadError(self.file, _where(node), f"Einsum equation '{eq}': "
                                "only explicit equations without '...' are supported")
        lhs, rhs = eq.split("->")
        terms = lhs.split(",")
        sizes: dict[str, int] = {}
        refs = []
        for term, name in zip(terms, node.input, strict=True):
            shape, _ = self._shape(node, name)
            for r, d in zip(term, shape, strict=True):
                sizes[r] = d
            refs.append(self._ref(node, name, tuple(term)))
        out = self._ref(node, node.output[0], tuple(rhs))
        ranks = list(rhs) + [r for t in terms for r in t if r not in rhs]
        e = Einsum(node.name or node.output[0], out, tuple(refs),
                   tuple((r, sizes[r]) for r in dict.fromkeys(ranks)),
                   reduce_op="add" if set(lhs.replace(",", "")) - set(rhs) else None)
        self._emit(node, MATMUL if e.is_contraction else VECTOR,
                   "gemm" if any(r.role == "weight" for r in refs) else "attention", e)

    def _Softmax(self, node: Any) -> None:
        x = node.input[0]
        shape, _ = self._shape(node, x)
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1) % len(shape)
        if axis != len(shape) - 1:
            raise WorkloadError(self.file, _where(node), "Softmax over an axis other "
                                                                  "than the last is not supported")
        ranks = self._ranks(len(shape))
        sizes = dict(zip(ranks, shape, strict=True))
        cls = "attention" if x in self.attn_out else "softmax"
        casc = softmax(node.name or node.output[0], self._ref(node, x, ranks), sizes, ranks[-1])
        self._emit(node, VECTOR, cls, casc)
        if cls == "attention":
            self.attn_out.add(node.output[0])

    def _norm(self, node: Any) -> None:
        x = node.input[0]
        shape, dtype = self._shape(node, x)
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1) % len(shape)
        t, d = math.prod(shape[:axis]), math.prod(shape[axis:])
        casc = layernorm(node.name or node.output[0], x, t, d, dtype, NORMS[node.op_type])
        self._emit(node, VECTOR, "norm", casc)

    def _Attention(self, node: Any) -> None:
        q, k, v = node.input[:3]
        sq, _ = self._shape(node, q)
        sk, _ = self._shape(node, k)
        if len(sq) != 4 or len(node.input) > 3 and any(node.input[3:]):
            raise WorkloadError(self.file, _where(node), "Attention: only 4-D Q, K, V "
                                "without mask, cache or bias inputs are supported")
        b, h, s, e = sq
        g, n = sk[1], sk[2]
        sizes = {"b": b, "g": g, "r": h // g, "s": s, "n": n, "e": e}
        name = node.name or node.output[0]
        scores = TensorRef(f"{name}.scores", tuple("bgrsn"), "fp32", "intermediate")
        casc = Cascade(name, (
            contraction(f"{name}.qk", scores, self._ref(node, q, tuple("bgrse")),
                        self._ref(node, k, tuple("bgne")), sizes),
            *softmax(f"{name}.softmax", scores, sizes, "n").einsums,
            contraction(f"{name}.av", self._ref(node, node.output[0], tuple("bgrse")),
                        TensorRef(f"{name}.softmax.out", tuple("bgrsn"), "fp32", "intermediate"),
                        self._ref(node, v, tuple("bgne")), sizes),
        ), outputs=(node.output[0],))
        self._emit(node, ATTENTION, "attention", casc)

    def _elementwise_ranks(self, node: Any, name: str, out_shape: tuple[int, ...]
                           ) -> tuple[str, ...]:
        shape, _ = self._shape(node, name)
        off = len(out_shape) - len(shape)
        return tuple(f"d{off + i}" for i, d in enumerate(shape) if d == out_shape[off + i]
                     and d > 1)

    def _binary(self, node: Any) -> None:
        out = node.output[0]
        so, _ = self._shape(node, out)
        ranks = tuple(f"d{i}" for i, d in enumerate(so) if d > 1)
        sizes = {f"d{i}": d for i, d in enumerate(so)}
        inputs = tuple(self._ref(node, i, self._elementwise_ranks(node, i, so))
                       for i in node.input if i)
        e = elementwise(node.name or out, self._ref(node, out, ranks), inputs, sizes,
                        BINARY[node.op_type])
        cls = "attention" if any(i in self.attn_out for i in node.input) else "elementwise"
        if cls == "attention":
            self.attn_out.add(out)
        self._emit(node, VECTOR, cls, e)

    def _unary(self, node: Any) -> None:
        x, out = node.input[0], node.output[0]
        so, _ = self._shape(node, out)
        ranks = tuple(f"d{i}" for i, d in enumerate(so) if d > 1)
        sizes = {f"d{i}": d for i, d in enumerate(so)}
        e = elementwise(node.name or out, self._ref(node, out, ranks),
                        (self._ref(node, x, ranks),), sizes, "copy", unary=UNARY[node.op_type])
        self._emit(node, VECTOR, "activation", e)

    def _Cast(self, node: Any) -> None:
        self._unary_copy(node)

    def _unary_copy(self, node: Any) -> None:
        x, out = node.input[0], node.output[0]
        so, _ = self._shape(node, out)
        ranks = tuple(f"d{i}" for i, d in enumerate(so) if d > 1)
        sizes = {f"d{i}": d for i, d in enumerate(so)}
        e = elementwise(node.name or out, self._ref(node, out, ranks),
                        (self._ref(node, x, ranks),), sizes, "copy")
        self._emit(node, VECTOR, "elementwise", e)

    def _reduce(self, node: Any) -> None:
        x, out = node.input[0], node.output[0]
        sx, _ = self._shape(node, x)
        so, _ = self._shape(node, out)
        ranks = tuple(f"d{i}" for i in range(len(sx)))
        axes = [a.ints for a in node.attribute if a.name == "axes"]
        if axes:
            red = {int(i) % len(sx) for i in axes[0]}
        elif len(node.input) > 1 and node.input[1]:
            if len(so) != len(sx):
                raise WorkloadError(self.file, _where(node), f"{node.op_type}: axes "
                                    "given as a tensor need keepdims=1")
            red = {i for i, d in enumerate(sx) if so[i] != d}  # every rank that shrank
        else:
            red = set(range(len(sx)))
        out_ranks = tuple(r for i, r in enumerate(ranks) if i not in red)
        e = Einsum(node.name or out, self._ref(node, out, out_ranks),
                   (self._ref(node, x, ranks),), tuple(zip(ranks, sx, strict=True)),
                   reduce_op=REDUCE[node.op_type])
        self._emit(node, VECTOR, "reduction", e)

    def _Gather(self, node: Any) -> None:
        """A lookup in an initializer: the embedding rows of every token."""
        table, out = node.input[0], node.output[0]
        st, dtype = self.g.inits[table]
        so, _ = self._shape(node, out)
        d = math.prod(st[1:])
        t = math.prod(so) // max(d, 1)
        sizes = {"t": t, "d": d}
        e = elementwise(node.name or out, TensorRef(out, ("t", "d"), dtype),
                        (TensorRef(table, ("t", "d"), dtype, "weight"),), sizes, "copy")
        self._emit(node, MEMORY, "memory", e)


def _layers(b: _Builder) -> tuple[list[int], int]:
    """The layer of each op and the layer count (see the module doc)."""
    named = [_LAYER_RE.search(n.name or "") for n in b.nodes]
    if any(named):
        idx = sorted({int(m.group(1)) for m in named if m})
        remap = {v: i for i, v in enumerate(idx)}
        first = next(i for i, m in enumerate(named) if m)
        last = max(i for i, m in enumerate(named) if m)
        out = []
        for i, m in enumerate(named):
            if m:
                out.append(remap[int(m.group(1))])
            else:
                out.append(-1 if i < first else (len(idx) if i > last else out[-1]))
        return out, len(idx)
    ops = b.ops
    norms = [i for i, op in enumerate(ops) if op.op_class == "norm"]
    starts = []
    for j, i in enumerate(norms):
        end = norms[j + 1] if j + 1 < len(norms) else len(ops)
        if any(ops[k].op_class == "attention" for k in range(i, end)):
            starts.append(i)
    if not starts:
        return [0] * len(ops), 1
    residual = [i for i, op in enumerate(ops) if op.op_class == "elementwise"
                and isinstance(op.compute, Einsum) and op.compute.map_op == "add"
                and all(t.role == "activation" for t in op.compute.inputs)
                and len(op.compute.inputs) == 2]
    tail = max((i for i in residual if i > starts[-1]), default=len(ops) - 1)
    out = []
    for i in range(len(ops)):
        if i < starts[0]:
            out.append(-1)
        elif i > tail:
            out.append(len(starts))
        else:
            out.append(sum(1 for s in starts if s <= i) - 1)
    return out, len(starts)


@lru_cache(maxsize=8)
def _build(path: str, stamp: tuple[int, int], batch: int, seq: int
           ) -> tuple[tuple[Op, ...], int, dict]:
    graph = _read(path)
    b = _Builder(graph, batch, seq)
    for node in graph.proto.graph.node:
        try:
            b.node(node)
        except WorkloadError:
            raise
        except (ValueError, KeyError, IndexError, TypeError, StopIteration,
                ZeroDivisionError) as exc:  # a node whose attributes or shapes do not fit
            raise WorkloadError(path, _where(node),
                                f"cannot trace this {node.op_type} node "
                                f"({type(exc).__name__}: {str(exc)[:120]})") from None
    if not b.ops:
        raise WorkloadError(path, "", "the graph has no computing nodes")
    layers, n_layers = _layers(b)
    outputs = {o.name for o in graph.proto.graph.output}
    head = None
    for i in range(len(b.ops) - 1, -1, -1):
        op = b.ops[i]
        if op.kind == MATMUL and op.op_class == "gemm":
            reach = {o for o in b.nodes[i].output}
            if reach & outputs or _reaches(b, reach, outputs):
                head = i
            break
    ops = []
    for i, op in enumerate(b.ops):
        op.layer = layers[i]
        if i == head:
            op.name = "lm_head"
            op.op_class = "gemm"
        ops.append(op)
    info = {"n_params": graph.n_params, "has_head": head is not None}
    return tuple(ops), n_layers, info


def _reaches(b: _Builder, tensors: set[str], outputs: set[str]) -> bool:
    """Whether ``tensors`` flow into a graph output through layout changes only."""
    frontier = set(tensors)
    for node in b.g.proto.graph.node:
        if node.op_type in VIEW_OPS and frontier & set(node.input):
            frontier |= set(node.output)
    return bool(frontier & outputs)


def load_onnx_model(path: str | Path) -> ModelConfig:
    """The shape summary of an ONNX graph as a :class:`ModelConfig` of kind ``onnx`` (its trace
    comes from the graph: :func:`trace_onnx`). Shapes are probed at batch 1 and the first of
    :data:`PROBE_TOKENS` tokens the graph accepts."""
    path = str(Path(path).resolve()) if Path(path).exists() else str(path)
    _read(path)  # unsupported nodes and unnamed dimensions fail here, whatever the shapes
    first: WorkloadError | None = None
    for seq in PROBE_TOKENS:  # a graph may bake a sequence length into a Reshape
        try:
            ops, n_layers, info = _build(path, _mtime(path), 1, seq)
            break
        except WorkloadError as exc:
            first = first or exc
    else:
        raise first  # type: ignore[misc]
    try:
        return _summary(path, ops, n_layers, info)
    except WorkloadError as exc:
        if exc.file:
            raise
        raise WorkloadError(path, exc.path, exc.message) from None


def _summary(path: str, ops: tuple[Op, ...], n_layers: int, info: dict) -> ModelConfig:
    gemms = [op.compute for op in ops if op.kind == MATMUL and op.op_class == "gemm"
             and isinstance(op.compute, Einsum)]
    d = next((op.compute.size.get("d", 0) for op in ops if op.kind == MEMORY), 0) or \
        (gemms[0].gemm_shape[3] if gemms else 1)
    widths = [op.compute.gemm_shape[2] for op in ops if op.kind == MATMUL
              and op.op_class == "gemm" and op.name != "lm_head"]
    vocab = next((op.compute.gemm_shape[2] for op in ops if op.name == "lm_head"), 1)
    heads, head_dim = 1, d
    for op in ops:  # the first attention contraction: (heads, queries, keys, head_dim)
        if op.op_class == "attention" and op.kind in (MATMUL, ATTENTION):
            e = op.compute if isinstance(op.compute, Einsum) else op.compute.einsums[0]
            if e.is_contraction:
                heads, head_dim = e.gemm_shape[0], e.gemm_shape[3]
            break
    return ModelConfig(name=Path(path).stem, family="onnx", kind="onnx", graph=path,
                       n_params=int(info["n_params"]), n_layers=max(1, n_layers),
                       d_model=max(1, d), n_heads=max(1, heads), n_kv_heads=max(1, heads),
                       head_dim=max(1, head_dim),
                       d_ff=max([1, *widths]), vocab_size=max(1, vocab),
                       max_positions=33554432, position="none", bias=False,
                       source=f"ONNX graph {path}")


def _mtime(path: str) -> tuple[int, int]:
    """The file's (modification time in ns, size): a rewritten file is parsed again."""
    try:
        st = Path(path).stat()
        return st.st_mtime_ns, st.st_size
    except OSError:
        return 0, 0


def trace_onnx(model: ModelConfig, scenario: Scenario) -> Trace:
    """The graph of ``model.graph`` as one forward pass of ``scenario.batch`` requests of
    ``scenario.prompt_len`` tokens (phase ``prefill``)."""
    ops, _, info = _build(model.graph, _mtime(model.graph), scenario.batch, scenario.prompt_len)
    fresh = [Op(op.id, op.name, op.kind, op.phase, op.layer, op.step, op.compute, op.shards,
                op.deps, None, op.tokens, op.requests, "", op.op_class, op.flops, op.bytes)
             for op in ops]
    phases = ("prefill",) if info["has_head"] else ()
    return Trace(fresh, model, scenario, {"phases": phases, "traced": ("prefill",),
                                          "kind": "onnx", "graph": model.graph})
