"""`make bench`: throughput and latency of the real stack, written to docs/benchmarks.md."""
