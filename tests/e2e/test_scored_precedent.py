"""Scored precedent through the public API, with a real server and worker process."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import time
from typing import Any

import httpx
import pytest

from fixtures.precedent_eval.generate import EVENTS, LABELS
from server.demo.release_demo import INCIDENT, LIVE, LIVE_WORKFLOW, PRECEDENT, release_demo_events
from server.settings import Settings
from server.startup import create_key
from tests.e2e.conftest import Process, Server
from tests.support import APPEND, GraphQLClient, new_tenant

pytestmark = pytest.mark.e2e

SCORED = """query($t: String!, $n: Int!) { scoredPrecedents(traceId: $t, first: $n) {
  traceId candidates indexedTo
  results { traceId score outcome { decision committed traceOutcome incident }
            matches { feature detail contribution } }
  warnings { decision message traceIds } } }"""


def _client(server: Server, settings: Settings, tenant: str) -> GraphQLClient:
    token = asyncio.run(create_key(settings, None, [tenant], ["admin"]))
    return GraphQLClient(httpx.AsyncClient(base_url=server.url, timeout=60), token)


async def _scored(gql: GraphQLClient, trace: str, first: int, at_least: int) -> dict[str, Any]:
    """Scored precedent once the worker's case projection has reached `at_least`."""
    deadline = time.monotonic() + 60
    while True:
        data: dict[str, Any] = (await gql.data(SCORED, {"t": trace, "n": first}))[
            "scoredPrecedents"
        ]
        if data["indexedTo"] >= at_least:
            return data
        assert time.monotonic() < deadline, data
        await asyncio.sleep(0.1)


def test_the_release_demo_scores_the_approved_acme_renewal_first_and_warns_a_rejection(
    server: Server, worker_process: Process, settings: Settings
) -> None:
    gql = _client(server, settings, new_tenant())

    async def scenario() -> None:
        async with gql.http:
            stored = await gql.append_ok(release_demo_events())
            data = await _scored(gql, LIVE, 5, stored[-1]["logSeq"])
            first, second = data["results"]
            assert (first["traceId"], second["traceId"]) == (PRECEDENT, INCIDENT)
            assert data["candidates"] == 2  # the two finished traces; never itself
            assert first["outcome"] == {"decision": "approved", "committed": True,
                                        "traceOutcome": "success", "incident": False}  # fmt: skip
            assert second["outcome"]["decision"] == "rejected"
            assert second["outcome"]["incident"] is True  # its incident review
            details = {m["feature"]: m["detail"] for m in first["matches"]}
            assert details["primary_entity"] == "same account:acct-acme-platform"
            assert details["policy"] == "same policy discount-cap@2026.03"
            facts = [m["detail"] for m in first["matches"] if m["feature"] == "fact"]
            assert "requested_discount_pct 18 vs 21 (86%)" in facts
            assert first["score"] == pytest.approx(
                sum(m["contribution"] for m in first["matches"]), abs=1e-3
            )
            assert first["score"] > second["score"] > 0
            # Rejecting would go against the approved Acme precedent; approving would not.
            assert [w["decision"] for w in data["warnings"]] == ["rejected"]
            assert data["warnings"][0]["traceIds"] == [PRECEDENT]
            flow = await gql.data(  # once the workflow projection has the appended log
                """query($w: String!, $n: Long!) { workflow(workflowId: $w, atLeast: $n) {
                   scoredPrecedents { results { traceId } warnings { decision traceIds } } } }""",
                {"w": LIVE_WORKFLOW, "n": stored[-1]["logSeq"]},
            )
            scored = flow["workflow"]["scoredPrecedents"]
            assert [r["traceId"] for r in scored["results"]] == [PRECEDENT, INCIDENT]
            assert scored["warnings"] == [{"decision": "rejected", "traceIds": [PRECEDENT]}]
            # Bad input: the spec's codes, no partial answer.
            for variables, code in (({"t": "nope", "n": 5}, "NOT_FOUND"),
                                    ({"t": LIVE, "n": 0}, "INVALID_ARGUMENT")):  # fmt: skip
                body = await gql.execute(SCORED, variables)
                assert body["data"] is None, body
                assert body["errors"][0]["extensions"]["code"] == f"DG_ERR_{code}", body

    asyncio.run(scenario())


def _ndcg(ranked: list[str], relevant: set[str], k: int = 10) -> float:
    gain = sum(1 / math.log2(i + 2) for i, t in enumerate(ranked[:k]) if t in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return gain / ideal


def test_scored_precedent_finds_the_known_nearest_cases_of_the_evaluation_set(
    server: Server, worker_process: Process, settings: Settings
) -> None:
    """fixtures/precedent_eval: 2,400 traces, 480 queries whose 4 nearest cases are known
    by construction. Scored search against the spec's `precedents` order (the query's
    policy and version, most recent first) on the same set."""
    events = [json.loads(line) for line in gzip.decompress(EVENTS.read_bytes()).splitlines()]
    labels: dict[str, list[str]] = json.loads(LABELS.read_text())
    gql = _client(server, settings, new_tenant())

    async def scenario() -> tuple[float, float, float]:
        async with gql.http:
            last = 0
            for start in range(0, len(events), 1000):
                data = await gql.data(APPEND, {"events": events[start : start + 1000]})
                assert data["appendEvents"]["errors"] == [], data
                last = data["appendEvents"]["events"][-1]["logSeq"]
            recall = ndcg = reference = 0.0
            policy = {e["traceId"]: e["payload"]["policy"] for e in events
                      if e["eventType"] == "PolicyEvaluated"}  # fmt: skip
            for query, relevant in labels.items():
                scored = await _scored(gql, query, 10, last)
                ranked = [r["traceId"] for r in scored["results"]]
                recall += len(set(ranked[:5]) & set(relevant)) / len(relevant)
                ndcg += _ndcg(ranked, set(relevant))
                hits = await gql.data(
                    """query($p: String!, $v: String!) { precedents(policyId: $p,
                       policyVersion: $v, first: 11) { traceId } }""",
                    {"p": policy[query]["policy_id"], "v": policy[query]["policy_version"]},
                )
                order = [h["traceId"] for h in hits["precedents"] if h["traceId"] != query]
                reference += _ndcg(order, set(relevant))
            n = len(labels)
            return recall / n, ndcg / n, reference / n

    recall, ndcg, reference = asyncio.run(scenario())
    print(f"precedent eval: recall@5 {recall:.3f}, nDCG@10 {ndcg:.3f} "
          f"(reference `precedents` order {reference:.3f})")  # fmt: skip
    assert recall >= 0.9
    assert ndcg > reference
