"""Projection-backed reads: health and digests, summaries, the context graph, precedents."""
