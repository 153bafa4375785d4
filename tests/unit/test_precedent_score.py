"""Scored precedent's pure core: the fold, the score, the ranking and the warnings."""

from __future__ import annotations

import random

import pytest

from server.core.precedent_cases import Case, decode_case, encode_case
from server.core.precedent_score import CaseIndex, explain, fact_closeness, precedent_warnings


def _case(trace_id: str, **fields: object) -> Case:
    base: dict[str, object] = {"workflow": "w", "finished": True}
    return Case(trace_id=trace_id, **(base | fields))  # type: ignore[arg-type]


def test_numbers_are_close_by_ratio_strings_by_equality() -> None:
    assert fact_closeness(18.0, 21.0) == pytest.approx(1 - 3 / 21)
    assert fact_closeness(0.0, 0.0) == 1.0
    assert fact_closeness(10.0, -10.0) == 0.0  # floored, never negative
    assert fact_closeness("emea", "emea") == 1.0
    assert fact_closeness("emea", "apac") == 0.0
    assert fact_closeness(1.0, None) == 0.0
    assert fact_closeness(True, "True") == 0.0


def test_the_vectorised_score_equals_the_explained_one_for_random_cases() -> None:
    rng = random.Random(3)

    def random_case(n: int) -> Case:
        return _case(
            f"t{n}",
            workflow=rng.choice(["a", "b"]),
            primary_entity=rng.choice(["account:1", "account:2", "vendor:1", None]),
            entities=tuple(sorted(rng.sample(["account:1", "quote:9", "req:3", "x:y"], 2))),
            facts={"d": float(rng.randint(0, 40)), "r": rng.choice(["emea", "apac"])},
            policies=(rng.choice(["p@1", "p@2", "q@1"]),),
            codes=tuple(sorted(rng.sample(["c1", "c2", "c3"], rng.randint(0, 2)))),
        )

    index = CaseIndex()
    cases = [random_case(n) for n in range(200)]
    for case in cases:
        index.add(case)
    for _ in range(20):
        query = random_case(999)
        vector = index.scores(query)
        for case, value in zip(cases, vector, strict=True):
            assert explain(query, case).score == pytest.approx(value, abs=1e-3)


def test_ranking_is_by_score_then_trace_id_and_never_returns_the_query() -> None:
    index = CaseIndex()
    for trace in ("c", "a", "b", "q"):  # equal cases: the tie goes by trace id
        index.add(_case(trace, facts={"d": 5.0}))
    index.add(_case("z", facts={"d": 50.0}))
    ranked = index.rank(_case("q", facts={"d": 5.0}), 4)
    assert [r.case.trace_id for r in ranked] == ["a", "b", "c", "z"]
    assert ranked[0].score > ranked[-1].score


def test_cases_survive_their_stored_form() -> None:
    case = _case("t", facts={"d": 1.0, "ok": True, "r": "x"}, policies=("p@1",), incident=True)
    assert decode_case(encode_case(case)) == case


def test_a_decision_is_warned_when_the_strongest_precedent_mostly_went_the_other_way() -> None:
    index = CaseIndex()
    index.add(_case("r1", decision="rejected", facts={"d": 10.0}))
    index.add(_case("r2", decision="rejected", facts={"d": 11.0}))
    index.add(_case("a1", decision="approved", facts={"d": 30.0}))
    index.add(_case("a2", decision="approved", incident=True, facts={"d": 10.0}))
    warnings = precedent_warnings(index.rank(_case("q", facts={"d": 10.0}), 5))
    # The top three decided: r1, a2 (approved, then an incident), r2: all against approving.
    assert [(w.decision, w.trace_ids) for w in warnings] == [("approved", ("a2", "r1", "r2"))]
    assert "then an incident" in warnings[0].message


def test_a_case_keeps_its_entities_as_a_sorted_set_whatever_the_arrival_order() -> None:
    from server.core.envelope import ActorRef, SourceRef, StoredEvent
    from server.core.precedent_cases import fold_case

    names = [f"opp-{n}" for n in range(300)] * 2  # each entity named twice
    random.Random(7).shuffle(names)
    case = None
    for seq, name in enumerate(names, start=1):
        payload = {"source": {"object_type": "opportunity", "object_id": name}}
        event = StoredEvent(
            seq, f"e{seq}", "t", seq, "InputObserved", "2026-12-06T00:00:00Z",
            "2026-12-06T00:00:00Z", SourceRef("p", "s"), ActorRef("agent", "a"), f"k{seq}",
            payload, "sha256:unchecked",
        )  # fmt: skip
        case = fold_case(case, event)
    assert case is not None
    assert case.entities == tuple(sorted({f"opportunity:{name}" for name in names}))
