"""The comparison itself: stable across two runs of the same graph, and not blind.

No mesh here: both sides are in-process runs, so these tests show that the normalization
removes only what differs between any two runs (ids, namespaces' task ids, order within a
superstep) and that a real difference in events, interrupts, errors or state still fails.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.equivalence.cases import CASES
from tests.e2e.equivalence.harness import Case, Leg, assert_equivalent, run_in_process

_BY_ID = {c.id: c for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_two_in_process_runs_are_equivalent(case: Case) -> None:
    first = await run_in_process(case)
    second = await run_in_process(case)
    assert_equivalent(case, first, second)


def _drop_custom(legs: list[Leg]) -> None:
    seg = next(s for s in legs[0].segments if s.get("custom"))
    seg["custom"].pop()


def _change_token(legs: list[Leg]) -> None:
    seg = next(s for s in legs[0].segments if s.get("messages"))
    seg["messages"][0][-1][0][1] += "!"


def _move_update(legs: list[Leg]) -> None:
    segs = [s for s in legs[0].segments if s.get("updates")]
    segs[1]["updates"].append(segs[0]["updates"].pop())


def _change_error(legs: list[Leg]) -> None:
    assert legs[-1].error is not None
    legs[-1].error["message"] += " (elsewhere)"


def _change_interrupt(legs: list[Leg]) -> None:
    legs[0].interrupts[0]["voter"] = "mallory"


def _change_state(legs: list[Leg]) -> None:
    legs[-1].values["summary"] = "different"


def _drop_output_interrupt(legs: list[Leg]) -> None:
    legs[0].output["__interrupt__"].pop()


def _lose_leg(legs: list[Leg]) -> None:
    legs.pop()


MUTATIONS: list[tuple[str, str, Callable[[list[Leg]], None]]] = [
    ("parallel-reducers", "drop-custom", _drop_custom),
    ("messages-tokens", "change-token", _change_token),
    ("parallel-reducers", "move-update", _move_update),
    ("node-error", "change-error", _change_error),
    ("parallel-interrupt-resume-map", "change-interrupt", _change_interrupt),
    ("parallel-reducers", "change-state", _change_state),
    ("interrupt-twice", "lose-leg", _lose_leg),
    ("parallel-interrupt-resume-map", "drop-output-interrupt", _drop_output_interrupt),
]


@pytest.mark.parametrize(
    ("case_id", "mutate"), [(c, m) for c, _, m in MUTATIONS], ids=[n for _, n, _ in MUTATIONS]
)
async def test_a_difference_is_caught(case_id: str, mutate: Callable[[list[Leg]], None]) -> None:
    case = _BY_ID[case_id]
    local = await run_in_process(case)
    other: Any = copy.deepcopy(local)
    mutate(other)
    with pytest.raises(AssertionError):
        assert_equivalent(case, local, other)
