"""Scored precedent: past finished cases ranked by similarity to a live one, explained.

score = 0.10 workflow + 0.15 policy + 0.10 codes + 0.20 primary entity
      + 0.05 entities + 0.40 facts                                 (at most 1.0)

- workflow: the same workflow name.
- policy: a policy both evaluated, same id and version (1.0) or the same id in another
  version (0.6: the lineage of one policy), the best over the live case's policies.
- codes: Jaccard overlap of the violation codes the policies raised.
- primary entity: the same "type:id" (1.0), or only the same type (0.3).
- entities: Jaccard overlap of every entity either touched.
- facts: the mean over the live case's facts of each one's closeness in the other case:
  numbers 1 - |a - b| / max(|a|, |b|) (floored at 0: 18 vs 21 is 0.857), strings and
  booleans equal or not, a fact the other case lacks 0.

A feature the live case lacks adds the same 0 to every candidate, so it never reorders
them. Ranking is by score, then trace id, over scores rounded to 1e-9, so equal scores
tie the same way on every machine. `CaseIndex` keeps the cases of a tenant as numpy
columns and postings, so one query is a handful of vector operations over all of them
(docs/precedent.md); `explain` recomputes one candidate's score feature by feature in
plain Python for the reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from server.core.precedent_cases import Case, Fact

W_WORKFLOW: Final = 0.10
W_POLICY: Final = 0.15
W_CODES: Final = 0.10
W_PRIMARY: Final = 0.20
W_ENTITIES: Final = 0.05
W_FACTS: Final = 0.40
LINEAGE: Final = 0.6  # same policy id, another version
SAME_TYPE: Final = 0.3  # primary entities of one type, not the same one

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Match:
    """One feature's part of a score: what matched, and how much it added."""

    feature: str
    detail: str
    contribution: float


@dataclass(frozen=True, slots=True)
class ScoredCase:
    case: Case
    score: float
    matches: tuple[Match, ...]


def fact_closeness(a: Fact, b: Fact | None) -> float:
    if b is None:
        return 0.0
    if isinstance(a, float) and isinstance(b, float):
        scale = max(abs(a), abs(b))
        return 1.0 if scale == 0 else max(0.0, 1.0 - abs(a - b) / scale)
    return 1.0 if type(a) is type(b) and a == b else 0.0


def _jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    left, right = set(a), set(b)
    union = len(left | right)
    return len(left & right) / union if union else 0.0


def _policy_similarity(query: Case, case: Case) -> tuple[float, str]:
    best, detail = 0.0, ""
    theirs = set(case.policies)
    their_ids = {p.rpartition("@")[0]: p for p in case.policies}
    for policy in query.policies:
        if policy in theirs:
            return 1.0, f"same policy {policy}"
        other = their_ids.get(policy.rpartition("@")[0])
        if other is not None and best < LINEAGE:
            best, detail = LINEAGE, f"policy {other}, an earlier or later version of {policy}"
    return best, detail


def _fmt(value: Fact) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def explain(query: Case, case: Case) -> ScoredCase:
    """The score of `case` for `query`, feature by feature, in words."""
    matches: list[Match] = []

    def add(feature: str, weight: float, similarity: float, detail: str) -> None:
        if similarity > 0:
            matches.append(Match(feature, detail, round(weight * similarity, 4)))

    if query.workflow and query.workflow == case.workflow:
        add("workflow", W_WORKFLOW, 1.0, f"same workflow {case.workflow}")
    similarity, detail = _policy_similarity(query, case)
    add("policy", W_POLICY, similarity, detail)
    shared = sorted(set(query.codes) & set(case.codes))
    add("codes", W_CODES, _jaccard(query.codes, case.codes), "raised " + ", ".join(shared))
    if query.primary_entity and query.primary_entity == case.primary_entity:
        add("primary_entity", W_PRIMARY, 1.0, f"same {query.primary_entity}")
    elif (
        query.primary_entity
        and case.primary_entity
        and _kind(query.primary_entity) == _kind(case.primary_entity)
    ):
        kind = _kind(case.primary_entity)
        add("primary_entity", W_PRIMARY, SAME_TYPE, f"same entity type {kind}")
    common = sorted(set(query.entities) & set(case.entities))
    add(
        "entities",
        W_ENTITIES,
        _jaccard(query.entities, case.entities),
        "shares " + "; ".join(common),
    )
    if query.facts:
        for key in sorted(query.facts):
            mine, theirs = query.facts[key], case.facts.get(key)
            close = fact_closeness(mine, theirs)
            if close > 0 and theirs is not None:
                text = f"{key} {_fmt(theirs)} vs {_fmt(mine)}"
                add("fact", W_FACTS / len(query.facts), close, f"{text} ({close:.0%})")
    score = round(sum(m.contribution for m in matches), 4)
    return ScoredCase(case, score, tuple(matches))


def _kind(entity: str) -> str:
    return entity.partition(":")[0]


class _Column:
    """A growable numpy column (capacity doubles), read as a view of its filled part."""

    def __init__(self, dtype: type, fill: float | int) -> None:
        self._data: npt.NDArray[np.generic] = np.full(64, fill, dtype=dtype)
        self._fill = fill
        self.size = 0

    def put(self, index: int, value: float | int) -> None:
        if index >= len(self._data):
            grown = np.full(max(index + 1, len(self._data) * 2), self._fill, self._data.dtype)
            grown[: len(self._data)] = self._data
            self._data = grown
        self._data[index] = value
        self.size = max(self.size, index + 1)

    def view(self, n: int) -> npt.NDArray[np.generic]:
        if n > len(self._data):
            self.put(n - 1, self._fill)
        return self._data[:n]


class _Postings:
    """term -> the row numbers of the cases that have it, growable."""

    def __init__(self) -> None:
        self._rows: dict[str, _Column] = {}

    def add(self, term: str, row: int) -> None:
        column = self._rows.get(term)
        if column is None:
            column = self._rows[term] = _Column(np.int32, 0)
        column.put(column.size, row)

    def rows(self, term: str) -> npt.NDArray[np.int32]:
        column = self._rows.get(term)
        return column.view(column.size) if column is not None else np.empty(0, np.int32)  # type: ignore[return-value]


class CaseIndex:
    """The finished cases of one tenant, as columns a query scores all at once."""

    def __init__(self) -> None:
        self.cases: list[Case] = []
        self._rows: dict[str, int] = {}
        self._vocab: dict[str, int] = {}
        self._workflow = _Column(np.int32, -1)
        self._primary = _Column(np.int32, -1)
        self._primary_type = _Column(np.int32, -1)
        self._entity_count = _Column(np.int32, 0)
        self._code_count = _Column(np.int32, 0)
        self._numbers: dict[str, _Column] = {}
        self._labels: dict[str, _Column] = {}
        self._postings = _Postings()

    def __len__(self) -> int:
        return len(self.cases)

    def _code(self, text: str) -> int:
        return self._vocab.setdefault(text, len(self._vocab))

    def add(self, case: Case) -> None:
        """Add a finished case (one that is already here is left as it is: a finished
        trace never changes)."""
        if case.trace_id in self._rows:
            return
        row = self._rows[case.trace_id] = len(self.cases)
        self.cases.append(case)
        self._workflow.put(row, self._code("w:" + case.workflow))
        if case.primary_entity:
            self._primary.put(row, self._code("e:" + case.primary_entity))
            self._primary_type.put(row, self._code("t:" + _kind(case.primary_entity)))
        self._entity_count.put(row, len(case.entities))
        self._code_count.put(row, len(case.codes))
        for entity in case.entities:
            self._postings.add("e:" + entity, row)
        for code in case.codes:
            self._postings.add("c:" + code, row)
        for policy in case.policies:
            self._postings.add("p:" + policy, row)
            self._postings.add("pid:" + policy.rpartition("@")[0], row)
        for key, value in case.facts.items():
            if isinstance(value, float):
                column = self._numbers.setdefault(key, _Column(np.float64, np.nan))
                column.put(row, value)
            else:
                label = self._labels.setdefault(key, _Column(np.int32, -1))
                label.put(row, self._code(f"f:{key}:{type(value).__name__}:{value}"))

    def scores(self, query: Case) -> Floats:
        """Every case's score for `query`, in row order."""
        n = len(self.cases)
        score = np.zeros(n)
        if query.workflow and (code := self._vocab.get("w:" + query.workflow)) is not None:
            score += W_WORKFLOW * (self._workflow.view(n) == code)
        if query.policies:
            policy = np.zeros(n)
            for key in query.policies:
                policy[self._postings.rows("pid:" + key.rpartition("@")[0])] = LINEAGE
            for key in query.policies:
                policy[self._postings.rows("p:" + key)] = 1.0
            score += W_POLICY * policy
        score += W_CODES * self._jaccard("c:", query.codes, self._code_count.view(n), n)
        if query.primary_entity:
            primary = np.zeros(n)
            kind = self._vocab.get("t:" + _kind(query.primary_entity))
            if kind is not None:
                primary[self._primary_type.view(n) == kind] = SAME_TYPE
            same = self._vocab.get("e:" + query.primary_entity)
            if same is not None:
                primary[self._primary.view(n) == same] = 1.0
            score += W_PRIMARY * primary
        score += W_ENTITIES * self._jaccard("e:", query.entities, self._entity_count.view(n), n)
        if query.facts:
            facts = np.zeros(n)
            for key, value in query.facts.items():
                facts += self._closeness(key, value, n)
            score += (W_FACTS / len(query.facts)) * facts
        return score

    def _jaccard(
        self, prefix: str, terms: tuple[str, ...], counts: npt.NDArray[np.generic], n: int
    ) -> Floats:
        if not terms:
            return np.zeros(n)
        shared = np.zeros(n)
        for term in terms:
            shared[self._postings.rows(prefix + term)] += 1.0
        union = counts.astype(np.float64) + len(terms) - shared
        return np.divide(shared, union, out=np.zeros(n), where=union > 0)

    def _closeness(self, key: str, value: Fact, n: int) -> Floats:
        if isinstance(value, float):
            column = self._numbers.get(key)
            if column is None:
                return np.zeros(n)
            theirs = column.view(n).astype(np.float64)
            scale = np.maximum(np.abs(theirs), abs(value))
            with np.errstate(invalid="ignore", divide="ignore"):
                close = np.where(scale == 0, 1.0, 1.0 - np.abs(theirs - value) / scale)
            return np.nan_to_num(np.clip(close, 0.0, 1.0), nan=0.0)  # type: ignore[no-any-return]
        label = self._labels.get(key)
        code = self._vocab.get(f"f:{key}:{type(value).__name__}:{value}")
        if label is None or code is None:
            return np.zeros(n)
        return (label.view(n) == code).astype(np.float64)  # type: ignore[no-any-return]

    def rank(self, query: Case, limit: int) -> list[ScoredCase]:
        """The `limit` best cases for `query` (never itself), explained."""
        n = len(self.cases)
        if n == 0 or limit <= 0:
            return []
        score = np.round(self.scores(query), 9)
        own = self._rows.get(query.trace_id)
        if own is not None:
            score[own] = -1.0
        k = min(limit, n)
        # Everything scoring at least the k-th best, then ties broken by trace id: the
        # boundary of argpartition alone would cut a tie arbitrarily.
        threshold = np.partition(score, n - k)[n - k]
        rows = np.flatnonzero(score >= threshold)
        rows = rows[score[rows] >= 0]
        order = sorted(rows.tolist(), key=lambda r: (-score[r], self.cases[r].trace_id))
        return [explain(query, self.cases[r]) for r in order[:k]]


@dataclass(frozen=True, slots=True)
class PrecedentWarning:
    """A review decision that would go against the strongest precedent."""

    decision: str  # "approved" or "rejected": the decision this warns about
    message: str
    trace_ids: tuple[str, ...]


DECISIONS: Final = ("approved", "rejected")
STRONGEST: Final = 3


def _verdict(case: Case) -> str | None:
    """What a case teaches: an approval that led to an incident argues for rejecting."""
    if case.decision == "approved":
        return "rejected" if case.incident else "approved"
    return "rejected" if case.decision == "rejected" else None


def _described(scored: ScoredCase) -> str:
    then = ", then an incident" if scored.case.incident else ""
    return f"{scored.case.trace_id} ({scored.case.decision}{then}, score {scored.score:.2f})"


def precedent_warnings(ranked: Iterable[ScoredCase]) -> list[PrecedentWarning]:
    """Warnings for each decision that the score-weighted verdicts of the STRONGEST
    most similar decided cases mostly oppose (more than half of their weight)."""
    decided = [s for s in ranked if _verdict(s.case) is not None][:STRONGEST]
    total = sum(s.score for s in decided)
    warnings = []
    for decision in DECISIONS:
        against = [s for s in decided if _verdict(s.case) != decision]
        weight = sum(s.score for s in against)
        if not against or total <= 0 or weight * 2 <= total:
            continue
        verb = "Approving" if decision == "approved" else "Rejecting"
        cases = "; ".join(_described(s) for s in against)
        message = (
            f"{verb} goes against {len(against)} of the {len(decided)} most similar decided "
            f"cases: {cases}"
        )
        warnings.append(
            PrecedentWarning(decision, message, tuple(s.case.trace_id for s in against))
        )
    return warnings
