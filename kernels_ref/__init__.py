"""Reference kernels (numba, float64) that define what each op computes, and exact emulation of
the datatypes hardware computes in, for checking the numerics of the simulated devices.

Imports none of the other xpusim packages. Modules: ``dtypes`` (bf16/fp16/fp8/int formats,
rounding, bit patterns, weight quantization), ``gemm`` (GEMM, batched GEMM, GEMV, weight-only
integer GEMM), ``elementwise`` (norms, activations, softmax, RoPE), ``attention`` (3-, 2- and
1-pass cascades, decode attention with GQA), ``moe`` (gating, dispatch, combine), ``ssm``
(Mamba selective scan) and ``numpy_forms`` (the float64 numpy expressions they are tested
against).
"""
