"""Fused attention kernels and how they partition work over the SMs.

A FlashAttention-2 CTA owns ``Br`` query rows (padded: a decode query still fills a full
block) and walks the KV sequence in blocks of ``Bc`` tokens. Per block it runs two MMAs
(``QK^T`` and ``PV``: ``4 Br Bc d`` FLOPs at the SM's share of the sustained tensor peak) and the
online softmax on the CUDA cores and special-function units (``Br Bc`` exponentials, a few fp32
operations per score) — FA-2 does not overlap the two, so they add. It streams ``2 Bc d`` KV
elements per block from DRAM at its Little's-law rate. A block therefore takes
``max(t_mma + t_softmax, bytes / rate)``. On a GPU with ``attention_overlap`` (Hopper: FA-3 and
cuDNN's warp-specialised kernels, Shah et al. 2024) a prefill runs FA-3's tiles and two
consumer warpgroups ping-pong, one's softmax under the other's MMAs: ``max(t_mma, t_softmax)``.

Partitionings of one attention call (batch ``B``, ``H`` query heads, ``G`` KV heads):

* ``flash2`` — one CTA per (batch, head, query block); decode (one query) with grouped heads
  packs the group's queries into the rows (FA-2's seqlen/ngroups swap). With ``B*H`` below the
  SM count most SMs idle.
* ``flashdecoding`` — FA-2's split-KV kernel (``Br=64``, ``Bc=256/128/64`` for head dim
  ``<=64/<=128/>128``) with the split count of FA-2's ``num_splits_heuristic`` (the smallest
  count within 85% of the best wave efficiency over twice the SM count, as ``set_params_splitkv``
  calls it for its 128-thread CTAs; at most 128 and at most twice the SM count), plus a combine
  kernel that reads every split's partial output.
* ``paged`` — vLLM's PagedAttention V1 (2023 serving stacks): one CTA of four warps per
  (sequence, query head) on the CUDA cores, each warp streaming one 16-token KV block at a time;
  the query heads of a KV group share its cache through L2 (DRAM reads it once), so a CTA's
  Little's-law rate uses the L2 latency when its group has other members, DRAM's otherwise.
* ``mmha`` — TensorRT-LLM's masked multi-head attention kernel without multi-block mode and
  without XQA (the generation kernel of the v0.9 GptSession benchmarks): like ``paged``, one CTA
  of 256 threads per (sequence, query head) on the CUDA cores with no KV split ("the 'vanilla'
  implementation that uses a single CUDA thread-block per head", TensorRT-LLM gpt_attention.md;
  ``mmha_launch_kernel_ex``: ``grid{num_heads, batch_size, 1}``). Every CTA loads its KV head's
  cache itself with ordinary 16-byte loads (``k_cache_batch[...]`` through ``hi_kv``), so the
  ``g`` query heads of a GQA group each move the group's cache from L2 to their SM; the grid's
  fastest dimension is the head, so a group's CTAs are launched side by side and run together,
  and DRAM serves the group's cache once (the others hit L2). The L2-to-SM stream of ordinary
  loads runs at one 32-byte sector per clock per L2 slice, half the whitepaper's
  5120 bytes/clock read bandwidth of A100 (80 slices x 64 B; :data:`LDG_L2_FRACTION`), so a
  group of ``g`` heads costs ``max(DRAM once, g x cache / (L2 at the load rate))``.
* ``lean`` — LeanAttention: the same tiles (LeanTiles), all ``H x ceil(N/Bc)`` of them dealt out
  evenly to one persistent CTA per SM slot (stream-K); CTAs that share a head combine their
  partial softmax states with the associative rescaling, in the same kernel.

Multi-head latent attention (DeepSeek-V2/V3) decodes with FlashMLA (deepseek-ai/FlashMLA,
:func:`flash_mla`) whatever the decode policy: one KV head whose keys (``d_k`` = 576: latent
and RoPE channels) hold its values (``d_v`` = 512, the latent), so a KV block of ``Bc`` tokens
moves ``Bc d_k`` elements once and its two MMAs take ``2 Br Bc (d_k + d_v)`` FLOPs; the query
heads (times the query tokens) are the rows, 64 to a CTA; ``get_mla_metadata`` deals the
requests' 64-token KV blocks out evenly to one CTA per SM (split KV, a combine kernel after).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

from sim.gpu.hw import GpuHw
from sim.gpu.memory import cta_rate

DECODE_POLICIES = ("flash2", "flashdecoding", "lean", "paged", "mmha")
PAGED_WARPS = 4          # vLLM PagedAttention V1: 128 threads per (head, sequence)
PAGED_BLOCK = 16         # tokens per KV-cache block; one block per warp in flight
SOFTMAX_ALU_OPS = 4.0   # scale, running max, subtract (fused into exp2's FMA), row sum, convert
#: CUDA-core operations of the online softmax per score: the ALU ops and one exponential
SOFTMAX_OPS = SOFTMAX_ALU_OPS + 1.0
MAX_SPLITS = 128        # FA-2 flash_api.cpp: num_splits_heuristic(..., 128)
#: fraction of the L2's peak read bandwidth that ordinary global loads (LDG) draw: one 32-byte
#: sector per clock per L2 slice where the whitepaper's 5120 B/clk of A100 is 80 slices x 64 B
#: (Nsight Compute analysis of A100 L2 throughput, github.com/smallscientist1/cuda_microbenchmark
#: analysis_A100.md: "1 sectors per elapsed cycle", 2560 B/clk; cp.async reaches 1.5 sectors).
#: Hopper is given the same ratio (its preset's L2 bandwidth is A100's bytes/clock, assumed).
LDG_L2_FRACTION = 0.5


@dataclass(frozen=True)
class AttentionShape:
    """One attention call: ``q_len`` new queries per request over ``kv_len`` cached tokens."""

    batch: int
    q_heads: int
    kv_heads: int
    q_len: int
    kv_len: int
    head_dim: int
    kv_elem: float = 2.0   # bytes per K/V element
    q_elem: float = 2.0
    v_dim: int = 0         # value head width (0: head_dim)
    kv_shared: bool = False   # the values are the keys' first v_dim channels (latent attention)

    @property
    def group(self) -> int:
        return max(1, self.q_heads // max(self.kv_heads, 1))

    @property
    def kv_bytes(self) -> float:
        if self.v_dim or self.kv_shared:
            width = self.head_dim if self.kv_shared else self.head_dim + self.v_dim
            return self.batch * self.kv_heads * self.kv_len * width * self.kv_elem
        return 2.0 * self.batch * self.kv_heads * self.kv_len * self.head_dim * self.kv_elem

    @property
    def qo_bytes(self) -> float:
        if self.v_dim:
            return self.batch * self.q_heads * self.q_len * (self.head_dim + self.v_dim) \
                * self.q_elem
        return 2.0 * self.batch * self.q_heads * self.q_len * self.head_dim * self.q_elem

    @property
    def mma_dim(self) -> float:
        """The head width ``d`` with which a block's two MMAs take ``4 Br Bc d`` FLOPs."""
        return (self.head_dim + self.v_dim) / 2 if self.v_dim else self.head_dim

    @property
    def tile_dim(self) -> float:
        """The head width ``d`` with which a KV block of ``Bc`` tokens moves ``2 Bc d``
        elements."""
        if self.kv_shared:
            return self.head_dim / 2
        return self.mma_dim


@dataclass(frozen=True)
class AttnHw:
    """The per-SM rates the attention kernels need."""

    gpu: GpuHw
    sm_tensor: float      # sustained tensor FLOP/s per SM for the dtype
    sm_alu: float         # fp32 operations per second per SM (one per lane per clock)
    sm_sfu: float         # special-function (exp) results per second per SM


def fa2_blocks(head_dim: int, split_kernel: bool) -> tuple[int, int]:
    """(Br, Bc) of FA-2's sm80 kernels: the forward kernel uses 128-row blocks with 128 (d<=64)
    or 64 KV tokens; the split-KV kernel 64 rows with 256/128/64 tokens (d <=64/<=128/more)."""
    if split_kernel:
        return 64, (256 if head_dim <= 64 else (128 if head_dim <= 128 else 64))
    return 128, (128 if head_dim <= 64 else 64)


#: FA-3's forward tiles by head dim, non-causal (hopper/tile_size.h ``tile_size_fwd_sm90``):
#: (largest head dim, (Br, Bc) for 2-byte elements, (Br, Bc) for FP8)
FA3_TILES = ((64, (192, 192), (192, 160)), (96, (192, 144), (192, 128)),
             (128, (128, 176), (128, 224)), (192, (128, 128), (128, 160)),
             (256, (128, 80), (128, 128)))


def fa3_blocks(head_dim: int, elem: float = 2.0) -> tuple[int, int]:
    """(Br, Bc) of the warp-specialised Hopper forward kernel (FlashAttention-3) for a head dim
    and Q/K element size in bytes (1: FP8), non-causal: :data:`FA3_TILES`."""
    for limit, two_byte, one_byte in FA3_TILES:
        if head_dim <= limit:
            return one_byte if elem <= 1 else two_byte
    return FA3_TILES[-1][2] if elem <= 1 else FA3_TILES[-1][1]


def block_parts(ahw: AttnHw, br: int, bc: int, d: int) -> tuple[float, float]:
    """Seconds one CTA spends on one (Br x Bc) block's two MMAs and on its online softmax."""
    t_mma = 4.0 * br * bc * d / ahw.sm_tensor
    scores = br * bc
    t_softmax = scores * SOFTMAX_ALU_OPS / ahw.sm_alu + scores / ahw.sm_sfu
    return t_mma, t_softmax


def block_compute(ahw: AttnHw, br: int, bc: int, d: int, overlap: bool = False) -> float:
    """Seconds one CTA computes one (Br x Bc) block: two MMAs and the online softmax, one after
    the other (FA-2), or overlapped where one warpgroup's softmax runs under another's MMAs
    (``overlap``: FA-3's ping-pong schedule on Hopper): the larger of the two, or where
    ``gpu.attention_overlap_p`` is set their p-norm (the overlap is imperfect: the warpgroups
    synchronise twice per block and share the register file)."""
    t_mma, t_softmax = block_parts(ahw, br, bc, d)
    if not overlap:
        return t_mma + t_softmax
    p = ahw.gpu.attention_overlap_p
    return (t_mma ** p + t_softmax ** p) ** (1.0 / p) if p > 0 else max(t_mma, t_softmax)


def pipeline_fill(ahw: AttnHw, br: int, bc: int, d: int) -> float:
    """Seconds an overlapped (FA-3) kernel adds to its blocks' ``max(t_mma, t_softmax)``: its
    pipeline's fill and drain. FA-3's two-stage schedule (Shah et al. 2024, Algorithm 2)
    computes a tile's first block's ``QK^T`` and softmax before its loop and its last block's
    ``PV`` after it, none under the other; over ``T`` blocks that is ``(T - 1) max + t_mma +
    t_softmax = T max + min(t_mma, t_softmax)``. Between tiles the other consumer warpgroup's
    ping-pong and the persistent CTA's producer (hopper/tile_scheduler.hpp) keep the tensor
    cores busy, so a kernel pays it once: at its first tile's start and its last tile's end."""
    return min(block_parts(ahw, br, bc, d))


def _block_time(ahw: AttnHw, br: int, bc: int, d: float, elem: float, active: int,
                ctas_per_sm: int, overlap: bool = False, readers: int = 1,
                tile_d: float = 0.0) -> float:
    """Seconds per KV block for one of ``active`` CTAs (``ctas_per_sm`` share an SM); ``readers``
    CTAs run side by side on each KV tile (the query blocks of one head); ``tile_d``: the
    head width of the block's bytes where it is not ``d`` (:attr:`AttentionShape.tile_dim`)."""
    hw = ahw.gpu
    compute = block_compute(ahw, br, bc, d, overlap) * ctas_per_sm
    nbytes = 2.0 * bc * (tile_d or d) * elem
    inflight = 2.0 * nbytes  # double-buffered K and V tiles
    return max(compute, nbytes / _tile_rate(hw, active, inflight, readers))


def _tile_rate(hw: GpuHw, active: int, inflight: float, readers: int) -> float:
    """Bytes/s one of ``active`` CTAs streams its KV tiles at. Alone on its tiles it streams
    from DRAM (:func:`cta_rate`); where ``readers`` CTAs walk the same tiles together (FA-2 and
    FA-3 launch a head's query blocks side by side: the query block is the grid's fastest
    index) DRAM serves each tile once and the others read it from L2, so a CTA draws its share
    of the L2 at the L2's latency, and of DRAM once per ``readers`` tiles."""
    if readers <= 1 or hw.l2_latency <= 0 or hw.l2_achievable <= 0:
        return cta_rate(hw, active, inflight)
    n = max(active, 1)
    return min(hw.l2_achievable / n, inflight / hw.l2_latency,
               hw.hbm_achievable * min(readers, n) / n)


def _slots(hw: GpuHw, br: int, bc: int, d: int, elem: float) -> int:
    """CTAs of 4 warps that fit per SM: Q, K and V tiles (double-buffered KV) in shared memory."""
    smem = br * d * 2.0 + 2 * 2 * bc * d * elem
    return max(1, min(2, int(hw.smem_per_sm // smem)))


@lru_cache(maxsize=65536)
def flash2(ahw: AttnHw, sh: AttentionShape) -> dict:
    """FlashAttention-2 forward: one CTA per (batch, head, query block); a prefill on a GPU with
    ``attention_overlap`` runs FA-3's tiles and overlapped softmax instead."""
    hw = ahw.gpu
    decode_pack = sh.q_len == 1 and sh.group > 1
    rows = sh.group if decode_pack else sh.q_len
    heads = sh.kv_heads if decode_pack else sh.q_heads
    overlap = hw.attention_overlap and sh.q_len > 1
    br, bc = fa3_blocks(sh.head_dim, sh.q_elem) if overlap else \
        fa2_blocks(sh.head_dim, split_kernel=False)
    ctas = sh.batch * heads * math.ceil(rows / br)
    per_sm = _slots(hw, br, bc, sh.head_dim, sh.kv_elem)
    slots = hw.sms * per_sm
    blocks = math.ceil(sh.kv_len / bc)
    t = 0.0
    remaining = ctas
    waves = 0
    readers = math.ceil(rows / br)     # query blocks of one head, launched side by side
    while remaining > 0:
        active = min(remaining, slots)
        sharing = min(per_sm, math.ceil(active / hw.sms))
        t += blocks * _block_time(ahw, br, bc, sh.mma_dim, sh.kv_elem, active, sharing,
                                  overlap, min(readers, active), sh.tile_dim)
        t += hw.hbm_latency  # prologue: first K/V tile
        if overlap and not waves:   # FA-3's pipeline fill and drain, once per kernel
            t += pipeline_fill(ahw, br, bc, sh.mma_dim) * sharing
        remaining -= active
        waves += 1
    t += hw.launch
    return {"time": t, "ctas": ctas, "waves": waves, "splits": 1, "block": f"{br}x{bc}",
            "dram_bytes": sh.kv_bytes + sh.qo_bytes}


def num_splits_heuristic(batch_nheads_mblocks: int, num_sms: int, num_n_blocks: int,
                         max_splits: int = MAX_SPLITS) -> int:
    """FA-2's split count for FlashDecoding (flash_api.cpp, v2.x), reproduced as published."""
    if batch_nheads_mblocks >= 0.8 * num_sms:
        return 1
    max_splits = min(max_splits, num_sms, num_n_blocks)
    effs: list[float] = []
    best = 0.0

    def eligible(s: int) -> bool:
        return s == 1 or math.ceil(num_n_blocks / s) != math.ceil(num_n_blocks / (s - 1))

    for s in range(1, max_splits + 1):
        if not eligible(s):
            effs.append(0.0)
            continue
        waves = batch_nheads_mblocks * s / num_sms
        eff = waves / math.ceil(waves)
        best = max(best, eff)
        effs.append(eff)
    for s in range(1, max_splits + 1):
        if eligible(s) and effs[s - 1] >= 0.85 * best:
            return s
    return 1


def _combine_time(hw: GpuHw, partials: int, sh: AttentionShape, rows: int) -> float:
    """A kernel reading ``partials`` fp32 partial outputs (+ max and sum) per row and head."""
    nbytes = partials * sh.batch * sh.q_heads * sh.q_len * ((sh.v_dim or sh.head_dim) + 2) \
        * 4.0 + sh.qo_bytes / 2
    return hw.launch + max(hw.hbm_latency, nbytes / hw.hbm_achievable)


@lru_cache(maxsize=65536)
def flash_decoding(ahw: AttnHw, sh: AttentionShape) -> dict:
    """FA-2 split-KV (FlashDecoding): ``splits`` CTAs per (batch, head, query block)."""
    hw = ahw.gpu
    decode_pack = sh.q_len == 1 and sh.group > 1
    rows = sh.group if decode_pack else sh.q_len
    heads = sh.kv_heads if decode_pack else sh.q_heads
    br, bc = fa2_blocks(sh.head_dim, split_kernel=True)
    mblocks = sh.batch * heads * math.ceil(rows / br)
    n_blocks = math.ceil(sh.kv_len / bc)
    # flash_api.cpp set_params_splitkv (flash-attention, and PyTorch's copy): "We multiply number
    # of SMs by 2 to hard-code the fact that we're using 128 threads per block"
    splits = num_splits_heuristic(mblocks, 2 * hw.sms, n_blocks)
    per_split = math.ceil(n_blocks / splits)
    splits = math.ceil(n_blocks / per_split)
    ctas = mblocks * splits
    per_sm = _slots(hw, br, bc, sh.head_dim, sh.kv_elem)
    slots = hw.sms * per_sm
    t, remaining, waves = 0.0, ctas, 0
    while remaining > 0:
        active = min(remaining, slots)
        sharing = min(per_sm, math.ceil(active / hw.sms))
        t += per_split * _block_time(ahw, br, bc, sh.mma_dim, sh.kv_elem, active, sharing,
                                     tile_d=sh.tile_dim)
        t += hw.hbm_latency
        remaining -= active
        waves += 1
    t += hw.launch
    if splits > 1:
        t += _combine_time(hw, splits, sh, rows)
    return {"time": t, "ctas": ctas, "waves": waves, "splits": splits, "block": f"{br}x{bc}",
            "dram_bytes": sh.kv_bytes + sh.qo_bytes}


@lru_cache(maxsize=65536)
def lean_attention(ahw: AttnHw, sh: AttentionShape) -> dict:
    """LeanAttention: stream-K over LeanTiles with the associative softmax reduction."""
    hw = ahw.gpu
    decode_pack = sh.q_len == 1 and sh.group > 1
    rows = sh.group if decode_pack else sh.q_len
    heads = sh.kv_heads if decode_pack else sh.q_heads
    br, bc = fa2_blocks(sh.head_dim, split_kernel=True)
    units = sh.batch * heads * math.ceil(rows / br)   # output tiles (head blocks)
    tiles_per_unit = math.ceil(sh.kv_len / bc)
    total = units * tiles_per_unit
    per_sm = _slots(hw, br, bc, sh.head_dim, sh.kv_elem)
    ctas = min(hw.sms * per_sm, total)
    most = math.ceil(total / ctas)                     # LeanTiles of the busiest CTA
    sharing = min(per_sm, math.ceil(ctas / hw.sms))
    t = most * _block_time(ahw, br, bc, sh.mma_dim, sh.kv_elem, ctas, sharing,
                           tile_d=sh.tile_dim) + hw.hbm_latency
    # partial states: a head spread over several CTAs is finished by its host CTA, which reads
    # the others' partial outputs (fp32 O, running max and sum) from L2 once they are flagged
    peers = math.ceil(tiles_per_unit / most) if tiles_per_unit > most else 1
    fixup = 0.0
    if ctas > 1 and (ctas > units or tiles_per_unit % most):
        fixup_bytes = peers * rows * (sh.head_dim + 2) * 4.0
        fixup = hw.l2_latency + fixup_bytes / (hw.l2_achievable / hw.sms)
    t += fixup + hw.launch
    return {"time": t, "ctas": ctas, "waves": 1, "splits": peers,
            "block": f"{br}x{bc}", "tiles": total, "tiles_per_cta": most,
            "dram_bytes": sh.kv_bytes + sh.qo_bytes}


@lru_cache(maxsize=65536)
def paged_attention(ahw: AttnHw, sh: AttentionShape) -> dict:
    """vLLM PagedAttention V1 decode: one CTA per (sequence, query head), no KV split."""
    return _per_head_ctas(ahw, sh)


@lru_cache(maxsize=65536)
def masked_mha(ahw: AttnHw, sh: AttentionShape) -> dict:
    """TensorRT-LLM masked MHA (no multi-block, no XQA): one CTA per (sequence, query head);
    a GQA group's CTAs run side by side, so DRAM reads the group's cache once while each CTA
    streams it from L2 with ordinary loads (:data:`LDG_L2_FRACTION` of the L2's peak)."""
    return _per_head_ctas(ahw, sh, l2_fraction=LDG_L2_FRACTION)


def _per_head_ctas(ahw: AttnHw, sh: AttentionShape, l2_fraction: float = 1.0) -> dict:
    """One CTA per (sequence, query head) on the CUDA cores, no KV split; the query heads of a
    group run side by side and share the KV cache through L2 (DRAM reads it once); the CTAs'
    loads cross L2 at ``l2_fraction`` of its achievable bandwidth."""
    hw = ahw.gpu
    ctas = sh.batch * sh.q_heads
    slots = hw.sms * 4   # 128-thread CTAs, small shared memory: several per SM
    per_cta = 2.0 * sh.kv_len * sh.tile_dim * sh.kv_elem
    inflight = PAGED_WARPS * PAGED_BLOCK * sh.head_dim * sh.kv_elem
    shared = sh.group > 1
    latency = hw.l2_latency if shared else hw.hbm_latency
    cap = inflight / latency if latency > 0 else float("inf")
    active = min(ctas, slots)
    per_token_ops = 4.0 * sh.mma_dim + SOFTMAX_ALU_OPS   # q.k and p.v FMAs, softmax
    t_compute = math.ceil(ctas / slots) * sh.kv_len * per_token_ops / \
        (ahw.sm_alu * 2 / max(1, math.ceil(active / hw.sms)))
    t_cta = math.ceil(ctas / slots) * per_cta / cap
    dram = sh.kv_bytes + sh.qo_bytes
    t_dram = dram / hw.hbm_achievable
    t_l2 = ctas * per_cta / (hw.l2_achievable * l2_fraction)
    t = hw.launch + hw.hbm_latency + max(t_cta, t_dram, t_l2, t_compute)
    return {"time": t, "ctas": ctas, "waves": math.ceil(ctas / slots), "splits": 1,
            "block": f"1x{PAGED_BLOCK}", "dram_bytes": dram}


#: FlashMLA's tiles: 64 query rows (heads x query tokens) per CTA, 64-token KV blocks (its
#: paged cache's block size; deepseek-ai/FlashMLA README and csrc/kernels/params.h)
MLA_ROWS, MLA_BLOCK = 64, 64
#: KV blocks ``get_mla_metadata`` counts per request on top of its own, for the per-request
#: set-up a CTA does when it moves on to the next request (FlashMLA
#: csrc/kernels/get_mla_metadata.cu ``fixed_overhead_num_blocks``)
MLA_REQUEST_BLOCKS = 5


@lru_cache(maxsize=65536)
def flash_mla(ahw: AttnHw, sh: AttentionShape) -> dict:
    """FlashMLA decoding (module docstring): ``ceil(rows / 64)`` row blocks per KV head, the
    requests' KV blocks (plus :data:`MLA_REQUEST_BLOCKS` each) dealt out evenly to the SMs
    left per row block, each CTA streaming its blocks (the row blocks of a KV tile read it
    side by side, DRAM serving it once) with the two MMAs overlapped with the softmax on
    Hopper's warpgroups; then a combine kernel over the splits' fp32 partial outputs."""
    hw = ahw.gpu
    rows = sh.group * sh.q_len
    row_blocks = math.ceil(rows / MLA_ROWS)
    n_blocks = math.ceil(sh.kv_len / MLA_BLOCK)
    parts = max(1, hw.sms // (sh.kv_heads * row_blocks))   # CTAs per row block
    work = sh.batch * (n_blocks + MLA_REQUEST_BLOCKS)
    most = math.ceil(work / parts)
    ctas = parts * sh.kv_heads * row_blocks
    splits = min(parts, sh.batch * n_blocks)
    per_sm = math.ceil(ctas / hw.sms)
    t = most * _block_time(ahw, MLA_ROWS, MLA_BLOCK, sh.mma_dim, sh.kv_elem, ctas, per_sm,
                           hw.attention_overlap, row_blocks, sh.tile_dim)
    t += hw.hbm_latency + hw.launch
    if splits > sh.batch:   # some request spread over several CTAs: their partials combined
        dv = sh.v_dim or sh.head_dim
        nbytes = splits * rows * (dv + 2) * 4.0 + sh.batch * sh.q_heads * sh.q_len * dv * \
            sh.q_elem
        t += hw.launch + max(hw.hbm_latency, nbytes / hw.hbm_achievable)
    return {"time": t, "ctas": ctas, "waves": 1, "splits": splits,
            "block": f"{MLA_ROWS}x{MLA_BLOCK}", "dram_bytes": sh.kv_bytes + sh.qo_bytes}


def attention_time(ahw: AttnHw, sh: AttentionShape, decode_policy: str) -> dict:
    """Prefill (``q_len > 1``) always runs the FA-2 forward kernel; decode uses the policy
    (latent attention: FlashMLA, :func:`flash_mla`)."""
    if sh.kv_shared:
        return flash_mla(ahw, sh)
    if sh.q_len > 1 or decode_policy == "flash2":
        return flash2(ahw, sh)
    if decode_policy == "lean":
        return lean_attention(ahw, sh)
    if decode_policy == "paged":
        return paged_attention(ahw, sh)
    if decode_policy == "mmha":
        return masked_mha(ahw, sh)
    return flash_decoding(ahw, sh)


def attention_time_many(ahw: AttnHw, sh: AttentionShape, kv_lens, decode_policy: str) -> list[dict]:
    """:func:`attention_time` of ``sh`` at each KV length of ``kv_lens`` (``sh.kv_len`` itself is
    not used): one fresh dict per length (the caller may change it), equal to the scalar result
    bit for bit (tests/test_speed_pricing_attention.py).

    The tile kernels (FA-2, FlashDecoding, LeanAttention) see the KV length only through its
    block count ``ceil(kv_len / Bc)`` and the DRAM bytes, so each distinct block count is priced
    once by the scalar kernel and the bytes are formed over an array; the per-head kernels
    (``paged``, ``mmha``) are formed over the array with the scalar path's operations in its
    order. Lengths that are not positive Python ints below 2**53, or hardware rates the scalar
    path would divide by zero with, are priced one by one."""
    import numpy as np

    kv_lens = list(kv_lens)
    if not kv_lens:
        return []
    if any(type(n) is not int for n in kv_lens) or min(kv_lens) <= 0 or \
            max(kv_lens) >= 2 ** 53 or sh.v_dim or sh.kv_shared:
        return [dict(attention_time(ahw, replace(sh, kv_len=n), decode_policy))
                for n in kv_lens]
    kv = np.array(kv_lens, dtype=np.int64)
    # AttentionShape.kv_bytes + qo_bytes, left to right as the properties form them
    dram = (2.0 * sh.batch * sh.kv_heads * kv * sh.head_dim * sh.kv_elem + sh.qo_bytes).tolist()
    if sh.q_len > 1 or decode_policy == "flash2":
        fn, split = flash2, False
    elif decode_policy == "lean":
        fn, split = lean_attention, True
    elif decode_policy in ("paged", "mmha"):
        cols = _per_head_many(ahw, sh, kv, dram, LDG_L2_FRACTION if decode_policy == "mmha"
                              else 1.0)
        if cols is None:
            return [dict(attention_time(ahw, replace(sh, kv_len=n), decode_policy))
                    for n in kv_lens]
        return cols
    else:
        fn, split = flash_decoding, True
    if sh.q_len > 1 and ahw.gpu.attention_overlap:      # flash2() runs FA-3's tiles
        bc = fa3_blocks(sh.head_dim, sh.q_elem)[1]
    else:
        bc = fa2_blocks(sh.head_dim, split_kernel=split)[1]
    blocks = np.ceil(kv / bc).astype(np.int64)     # math.ceil(kv_len / bc): same float quotient
    uniq, first = np.unique(blocks, return_index=True)
    base = {nb: fn(ahw, replace(sh, kv_len=kv_lens[i]))
            for nb, i in zip(uniq.tolist(), first.tolist(), strict=True)}
    out = []
    for nb, d in zip(blocks.tolist(), dram, strict=True):
        res = base[nb].copy()
        res["dram_bytes"] = d
        out.append(res)
    return out


def _per_head_many(ahw: AttnHw, sh: AttentionShape, kv, dram: list,
                   l2_fraction: float) -> list[dict] | None:
    """:func:`_per_head_ctas` over the int64 array ``kv`` of KV lengths (``dram``: each one's
    DRAM bytes), the same float operations in the same order; None where a rate is not a
    positive number (the scalar path then raises or prices it)."""
    import numpy as np

    hw = ahw.gpu
    ctas = sh.batch * sh.q_heads
    slots = hw.sms * 4
    inflight = PAGED_WARPS * PAGED_BLOCK * sh.head_dim * sh.kv_elem
    shared = sh.group > 1
    latency = hw.l2_latency if shared else hw.hbm_latency
    cap = inflight / latency if latency > 0 else float("inf")
    active = min(ctas, slots)
    per_token_ops = 4.0 * sh.head_dim + SOFTMAX_ALU_OPS
    rate = ahw.sm_alu * 2 / max(1, math.ceil(active / hw.sms))
    l2 = hw.l2_achievable * l2_fraction
    if not (rate > 0 and cap > 0 and hw.hbm_achievable > 0 and l2 > 0 and slots > 0):
        return None
    waves = math.ceil(ctas / slots)
    per_cta = 2.0 * kv * sh.head_dim * sh.kv_elem
    t_compute = waves * kv * per_token_ops / rate
    t_cta = waves * per_cta / cap
    dram_a = np.array(dram, dtype=np.float64)
    t_dram = dram_a / hw.hbm_achievable
    t_l2 = ctas * per_cta / l2
    body = np.maximum(np.maximum(np.maximum(t_cta, t_dram), t_l2), t_compute)
    times = (hw.launch + hw.hbm_latency + body).tolist()
    block = f"1x{PAGED_BLOCK}"
    return [{"time": t, "ctas": ctas, "waves": waves, "splits": 1, "block": block,
             "dram_bytes": d} for t, d in zip(times, dram, strict=True)]
