"""Helpers of the GPU device model (``sim/devices/gpu.py``), one mechanism per module.

* ``hw``          — a hashable snapshot of the GPU parameters the models need (SI units).
* ``memory``      — achievable DRAM bandwidth by concurrency (Little's law) and access size.
* ``gemm``        — CTA tiles, waves, split-K, L2 panel reuse, per-tile prologue/epilogue.
* ``vector``      — softmax, layer/RMS norm, activations and element-wise ops by shape.
* ``attention``   — FlashAttention-2 prefill/decode (GQA), FlashDecoding and LeanAttention
                    work partitioning over the SMs.
* ``collectives`` — ring and tree all-reduce / all-gather / reduce-scatter with NCCL-style
                    protocols over NVLink/NVSwitch, PCIe and InfiniBand.
* ``host``        — the software stack: dispatch cost, host-timed measurement, async issue.
"""
