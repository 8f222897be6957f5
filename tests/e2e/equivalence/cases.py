"""The scenarios of the equivalence suite (graphs in ``graphs.py``, ids in ``graphs.yaml``)."""

from __future__ import annotations

from typing import Any

from tests.e2e.equivalence.harness import Case, resume_each

__all__ = ["CASES"]


def _only_alice(interrupts: list[dict[str, Any]]) -> dict[str, Any]:
    """A partial resume map: answer alice's interrupt, leave the others pending."""
    ids = [i["id"] for i in interrupts if i["value"]["voter"] == "alice"]
    assert len(ids) == 1, interrupts
    return {"resume": {ids[0]: "no"}, "resume_map": True}


CASES: tuple[Case, ...] = (
    # conditional edges: each of the three routes (one of them straight to END)
    Case("conditional-big", "conditional", {"x": 42}, expect=("success",)),
    Case("conditional-small", "conditional", {"x": 3}, expect=("success",)),
    Case("conditional-to-end", "conditional", {"x": -1}, expect=("success",)),
    # parallel branches joined, reducers on a list and an int, custom events from each branch
    Case("parallel-reducers", "parallel", {"seed": 2}, expect=("success",)),
    # Send: map over a list, reduce
    Case(
        "send-map-reduce",
        "send",
        {"words": ["a", "mesh", "graph", "is", "up"]},
        expect=("success",),
    ),
    # Command(goto=..., update=...) from a node; Command.PARENT from inside a subgraph
    Case("command-goto-update", "command", {"n": 2}, expect=("success",)),
    Case("command-parent-from-subgraph", "command", {"n": 1}, expect=("success",), subgraphs=True),
    # interrupt(): two in one node, resumed with a scalar then a dict value (not a map)
    Case(
        "interrupt-twice",
        "interrupts",
        {"request": "r1"},
        expect=("interrupted", "interrupted", "success"),
        resumes=({"resume": "ada"}, {"resume": {"count": 3}}),
    ),
    # a resume that also updates the state
    Case(
        "interrupt-resume-with-update",
        "interrupts",
        {"request": "r2"},
        expect=("interrupted", "interrupted", "success"),
        resumes=({"resume": "bob", "update": {"note": "from-command"}}, {"resume": 7}),
    ),
    # interrupt() inside a subgraph, with the subgraph's events and without them
    Case(
        "subgraph-interrupt-streamed",
        "subgraph_interrupt",
        {"topic": "mesh"},
        expect=("interrupted", "success"),
        resumes=({"resume": "approved"},),
        subgraphs=True,
    ),
    Case(
        "subgraph-interrupt-root-only",
        "subgraph_interrupt",
        {"topic": "mesh"},
        expect=("interrupted", "success"),
        resumes=({"resume": "approved"},),
    ),
    # interrupt() in three parallel tasks, resumed with a map of interrupt id -> value
    Case(
        "parallel-interrupt-resume-map",
        "parallel_interrupt",
        {"motion": "m1"},
        expect=("interrupted", "success"),
        resumes=(resume_each(lambda v: f"yes-{v['voter']}"),),
    ),
    # a partial map first: one task resumes, the other two stay interrupted
    Case(
        "parallel-interrupt-partial-map",
        "parallel_interrupt",
        {"motion": "m2"},
        expect=("interrupted", "interrupted", "success"),
        resumes=(_only_alice, resume_each(lambda v: f"late-{v['voter']}")),
    ),
    # RetryPolicy: succeeds on the third attempt / gives up after three
    Case("retry-recovers", "retry", {"fail_until": 3}, expect=("success",)),
    Case("retry-exhausted", "retry", {"fail_until": 99}, expect=("error",)),
    # a node error while its sibling in the same superstep succeeds
    Case("node-error", "node_error", {"sku": "a1"}, expect=("error",)),
    # LLM tokens from an async node and a sync node in parallel, plus a whole message
    Case("messages-tokens", "messages", {"topic": "cats"}, expect=("success",)),
    # functional API: parallel @task calls, an LLM inside a task, custom events
    Case("functional-tasks", "functional", {"nums": [1, 2, 3]}, expect=("success",)),
    Case(
        "functional-tasks-streamed",
        "functional",
        {"nums": [4, 5]},
        expect=("success",),
        subgraphs=True,
    ),
    Case(
        "functional-interrupt",
        "functional_interrupt",
        {"topic": "mesh"},
        expect=("interrupted", "success"),
        resumes=({"resume": "ship it"},),
    ),
    # recursion limit
    Case(
        "recursion-limit",
        "recursion",
        {"count": 0},
        expect=("error",),
        config={"recursion_limit": 6},
    ),
)
