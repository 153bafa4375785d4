"""Counterfactual policy replay's pure core."""

from __future__ import annotations

import pytest

from server.core.errors import DecisionGraphError
from server.core.policy_simulation import CandidatePolicy, Rule, SimulationTally
from server.core.precedent_cases import Case


def _case(trace: str, discount: float, recorded: str, **fields: object) -> Case:
    base: dict[str, object] = {
        "finished": True,
        "finished_at": f"2026-03-0{len(trace)}T00:00:00Z",
        "facts": {"discount": discount, "segment": "enterprise"},
        "policy_decisions": {"cap": recorded},
    }
    return Case(trace_id=trace, **(base | fields))  # type: ignore[arg-type]


CAP_20 = CandidatePolicy("cap", (Rule("discount", "gt", 20.0),))


def test_the_first_rule_that_holds_decides_and_none_means_the_default() -> None:
    policy = CandidatePolicy(
        "cap", (Rule("discount", "gt", 30.0, "deny"), Rule("segment", "eq", "smb"))
    )
    assert policy.decide({"discount": 35.0, "segment": "smb"}) == ("deny", 0)
    assert policy.decide({"discount": 10.0, "segment": "smb"}) == ("require_exception", 1)
    assert policy.decide({"discount": 10.0}) == ("allow", None)
    assert policy.decide({"discount": "35"}) == ("allow", None)  # text is not a number


@pytest.mark.parametrize(
    ("rules", "since", "until", "message"),
    [
        ((), None, None, "rules must hold"),
        ((Rule("d", "gt", "x"),), None, None, "compares numbers only"),
        ((Rule("d", "like", 1.0),), None, None, "op must be one of"),
        ((Rule("", "gt", 1.0),), None, None, "must not be empty"),
        ((Rule("d", "gt", 1.0),), "2026-02-01", "2026-01-01", "since must not be after"),
    ],
)
def test_a_bad_candidate_is_refused_with_the_reason(
    rules: tuple[Rule, ...], since: str | None, until: str | None, message: str
) -> None:
    with pytest.raises(DecisionGraphError, match=message) as raised:
        CandidatePolicy("cap", rules, since=since, until=until)
    assert raised.value.code == "DG_ERR_INVALID_ARGUMENT"


def test_flips_are_tallied_with_how_they_turned_out() -> None:
    cases = [
        _case("a", 18.0, "require_exception", decision="approved", committed=True),
        _case("bb", 19.0, "require_exception", decision="approved", incident=True),
        _case("ccc", 26.0, "require_exception", decision="rejected"),
        _case("dddd", 25.0, "allow"),  # went through; would now need an exception
        _case("eeeee", 10.0, "allow"),
        _case("open", 5.0, "require_exception", finished=False),  # not a decision yet
        _case("other", 5.0, "x", policy_decisions={"another": "require_exception"}),
    ]
    tally = SimulationTally()
    tally.add(CAP_20, reversed(cases))
    assert tally.evaluated == 5
    assert [f.trace_id for f in tally.sorted_flips()] == ["a", "bb", "dddd"]
    assert (tally.loosened, tally.tightened) == (2, 1)
    assert (tally.flipped_approvals, tally.flipped_approvals_with_incident) == (2, 1)
    assert tally.flipped_rejections == 0
    flip = tally.sorted_flips()[2]
    assert (flip.recorded, flip.simulated, flip.rule) == ("allow", "require_exception", 0)


def test_the_window_is_by_finishing_time() -> None:
    policy = CandidatePolicy(
        "cap", (Rule("discount", "gt", 20.0),), since="2026-03-02", until="2026-03-03T23"
    )
    tally = SimulationTally()
    tally.add(policy, [_case(t, 18.0, "require_exception") for t in ("a", "bb", "ccc", "dddd")])
    assert [f.trace_id for f in tally.sorted_flips()] == ["bb", "ccc"]
