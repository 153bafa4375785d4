"""Run the benchmarks and write docs/benchmarks.md (`make bench`, or `python -m bench ingest`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from bench.environment import ROOT, bench_settings, machine, postgres_version
from bench.ingest import bench_ingest
from bench.live import bench_live
from bench.precedent import bench_precedent
from bench.projection import bench_projection
from bench.report import render
from bench.scale import bench_scale
from bench.storage import bench_storage

# The numbers behind docs/benchmarks.md, kept beside it: a run of some sections
# (`python -m bench projection`) re-renders the others from here instead of dropping them.
RESULTS = ROOT / "docs" / "benchmarks.json"


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    sections = "ingest, projection, live, storage, precedent, scale"
    parser.add_argument("only", nargs="*", help=f"subset: {sections}")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each run")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--events", type=int, default=100_000, help="events to rebuild")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    wanted = set(args.only) or {"ingest", "projection", "live", "storage", "precedent", "scale"}
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    with bench_settings() as settings:
        results["machine"] = machine() | {
            "postgres": asyncio.run(postgres_version(settings.require_database_url)),
            "database": "embedded" if "host=/" in settings.require_database_url else "external",
        }
        if "ingest" in wanted:
            print("ingest ...", flush=True)
            results["ingest"] = bench_ingest(settings, args.seconds, args.workers)
        if "projection" in wanted:
            print("projection ...", flush=True)
            results["projection"] = bench_projection(settings, args.events)
        if "live" in wanted:
            print("live ...", flush=True)
            results["live"] = bench_live(settings, args.workers)
        if "precedent" in wanted:
            print("precedent ...", flush=True)
            results["precedent"] = bench_precedent(settings)
        if "scale" in wanted:
            print("scale ...", flush=True)
            results["scale"] = bench_scale(settings, args.seconds)
        if "storage" in wanted:
            print("storage ...", flush=True)
            results["storage"] = bench_storage(settings)
    for section in wanted & results.keys():
        results[section]["measured_at"] = results["machine"]["date"]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    (ROOT / "docs" / "benchmarks.md").write_text(render(results))
    print("wrote docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
