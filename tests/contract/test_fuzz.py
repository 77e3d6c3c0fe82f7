"""Fuzzing ``parse_event``: every input is accepted as a valid event or rejected with a reason,
nothing else escapes, an identity number anywhere (keys included, any spelling) is rejected, and
no reason ever holds one.

A deterministic slice (``derandomize=True``, fixed seeds): a few seconds in ``make test``. The
large run is ``bench/fuzz.py`` (≥ 100 000 inputs, figures in docs/performance.md).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.validation import InvalidEvent, parse_event
from core.domain import DomainConfig
from testing.fuzz import (
    FuzzInput,
    IdentityNumber,
    check_message,
    check_reason,
    identity_number,
    messages,
    spell,
)
from tests.contract.fixtures import as_bytes, cost_event

DETERMINISTIC = settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**15), max_value=10**15)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def outcome(raw: bytes, domain: DomainConfig, carried: IdentityNumber | None = None) -> str:
    return check_message(FuzzInput(raw, "hypothesis", carried), domain)


@DETERMINISTIC
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_are_accepted_or_rejected_with_a_reason(
    domain: DomainConfig, raw: bytes
) -> None:
    assert outcome(raw, domain) in ("accepted", "rejected")


@DETERMINISTIC
@given(fields=st.dictionaries(st.sampled_from(sorted(cost_event())), json_values, max_size=6))
def test_events_with_arbitrary_field_values(domain: DomainConfig, fields: dict[str, Any]) -> None:
    raw = json.dumps(cost_event(**fields), allow_nan=True).encode()
    assert outcome(raw, domain) in ("accepted", "rejected")


@st.composite
def identity_numbers(draw: st.DrawFn) -> IdentityNumber:
    import random

    rng = random.Random(draw(st.integers(min_value=0, max_value=2**32)))
    twelve = identity_number(rng)
    return IdentityNumber(twelve, spell(twelve, rng))


@DETERMINISTIC
@given(number=identity_numbers(), extra=json_values, as_key=st.booleans(), depth=st.integers(0, 3))
def test_an_identity_number_anywhere_is_rejected_by_position_only(
    domain: DomainConfig, number: IdentityNumber, extra: Any, as_key: bool, depth: int
) -> None:
    carrier: Any = {number.spelled: extra} if as_key else ["x", f"text {number.spelled} text"]
    for _ in range(depth):
        carrier = {"note": [carrier]}
    raw = as_bytes(cost_event(source_detail=carrier))
    with_escapes = json.dumps(cost_event(source_detail=carrier), ensure_ascii=True).encode()
    for data in (raw, with_escapes):
        try:
            parse_event(data, domain)
        except InvalidEvent as err:
            assert err.kind == "personal_id", err.reason
            check_reason(err.reason, number)
            assert err.reason.startswith(("a key at $.source_detail", "the value at $.source"))
        else:
            raise AssertionError("an event carrying an identity number was accepted")


def test_mutation_slice_every_input_is_accounted_for(domain: DomainConfig) -> None:
    counts: Counter[tuple[str, str]] = Counter()
    inputs = list(messages(seed=20261205, count=3_000))
    for item in inputs:
        counts[(item.kind, check_message(item, domain))] += 1
    assert sum(counts.values()) == len(inputs)
    # Every kind of input occurred, and the carried identity numbers were all rejected.
    assert counts[("valid", "accepted")] > 500
    assert counts[("mutated", "rejected")] > 1_000
    assert counts[("personal_id", "rejected")] > 500
    assert counts[("personal_id", "accepted")] == 0
