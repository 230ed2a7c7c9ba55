"""Mappings of ops onto devices: tiling per memory level, loop order, spatial unrolling,
fusion; the traffic, pass count and I/O lower bound each mapping implies, and the mapper that
searches them. Imports ``arch`` and ``workloads`` only."""
