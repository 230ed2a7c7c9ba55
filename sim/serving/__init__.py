"""Serving schedulers: request lengths, iteration-level batching with paged KV and
request-to-channel placement, and the NPU/PIM sub-batch interleaving of a decode iteration."""
