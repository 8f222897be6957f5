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


#: runtime_svc/manager.py (_execute, since da10dc9) ends an interrupted run with the LAST
#: root "values" chunk as its output (ended event data, WaitRun values). That chunk holds at
#: most the last interrupt raised, or none when a sibling's values chunk came after it;
#: LangGraph's ainvoke returns the last values plus "__interrupt__" with EVERY interrupt
#: (the manager already collects them all from "updates" for the ended event's interrupts).
CASES: tuple[Case, ...] = (
    # conditional edges: each of the three routes (one of them straight to END)
    Case("conditional-big", "conditional", {"x": 42}, expect=("success",)),
    Case("conditional-small", "conditional", {"x": 3}, expect=("success",)),
    Case("conditional-to-end", "conditional", {"x": -1}, expect=("success",)),
    # a run's configurable and context (LangGraph 1.x Runtime.context) reach edges and nodes
    Case(
        "conditional-config-context",
        "conditional",
        {"x": 42},
        expect=("success",),
        config={"configurable": {"threshold": 50}},
        context={"label": "vip"},
    ),
    # static breakpoints: stop before a node, continue with input None; stop after a node
    Case(
        "interrupt-before-node",
        "conditional",
        {"x": 42},
        expect=("interrupted", "success"),
        then=({"input": None},),
        interrupt_before=("big",),
    ),
    Case(
        "interrupt-after-node",
        "parallel",
        {"seed": 1},
        expect=("interrupted", "success"),
        then=({"input": None},),
        interrupt_after=("start",),
    ),
    # a second run on the same thread continues from its checkpoint (reducers accumulate)
    Case(
        "thread-continues",
        "conditional",
        {"x": 42},
        expect=("success", "success"),
        then=({"input": {"x": 3}},),
    ),
    # parallel branches joined, reducers on a list and an int, custom events from each branch
    Case("parallel-reducers", "parallel", {"seed": 2}, expect=("success",)),
    # Send: map over a list, reduce
    Case(
        "send-map-reduce",
        "send",
        {"words": ["a", "mesh", "graph", "is", "up"]},
        expect=("success",),
    ),
    # interrupt() in tasks created by Send, resumed with a map
    Case(
        "send-interrupt-resume-map",
        "send_interrupt",
        {"signers": ["ann", "ben"]},
        expect=("interrupted", "success"),
        then=(resume_each(lambda v: f"ok-{v['sign']}"),),
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
        then=({"resume": "ada"}, {"resume": {"count": 3}}),
    ),
    # Command(goto=..., update=...) sent by the client while an interrupt is pending
    Case(
        "client-command-goto",
        "interrupts",
        {"request": "r3"},
        expect=("interrupted", "interrupted", "interrupted", "success"),
        then=(
            {"goto": "finish", "update": {"note": "skipped"}},
            {"resume": "late"},
            {"resume": 1},
        ),
    ),
    # a resume that also updates the state
    Case(
        "interrupt-resume-with-update",
        "interrupts",
        {"request": "r2"},
        expect=("interrupted", "interrupted", "success"),
        then=({"resume": "bob", "update": {"note": "from-command"}}, {"resume": 7}),
    ),
    # interrupt() inside a subgraph, with the subgraph's events and without them
    Case(
        "subgraph-interrupt-streamed",
        "subgraph_interrupt",
        {"topic": "mesh"},
        expect=("interrupted", "success"),
        then=({"resume": "approved"},),
        subgraphs=True,
    ),
    Case(
        "subgraph-interrupt-root-only",
        "subgraph_interrupt",
        {"topic": "mesh"},
        expect=("interrupted", "success"),
        then=({"resume": "approved"},),
    ),
    # interrupt() in three parallel tasks, resumed with a map of interrupt id -> value
    Case(
        "parallel-interrupt-resume-map",
        "parallel_interrupt",
        {"motion": "m1"},
        expect=("interrupted", "success"),
        then=(resume_each(lambda v: f"yes-{v['voter']}"),),
    ),
    # a partial map first: one task resumes, the other two stay interrupted
    Case(
        "parallel-interrupt-partial-map",
        "parallel_interrupt",
        {"motion": "m2"},
        expect=("interrupted", "interrupted", "success"),
        then=(_only_alice, resume_each(lambda v: f"late-{v['voter']}")),
    ),
    # interrupts two subgraph levels down (a subgraph called from a node, holding a compiled
    # subgraph node) in parallel Send tasks; resumed with one map, with and without events
    Case(
        "nested-subgraph-resume-map-streamed",
        "nested_parallel",
        {"teams": ["a", "b"]},
        expect=("interrupted", "success"),
        then=(resume_each(lambda v: f"ok-{v['team']}"),),
        subgraphs=True,
    ),
    Case(
        "nested-subgraph-resume-map",
        "nested_parallel",
        {"teams": ["x", "y", "z"]},
        expect=("interrupted", "success"),
        then=(resume_each(lambda v: f"ok-{v['team']}"),),
    ),
    # falsy resume values are still resumes
    Case(
        "interrupt-falsy-resume",
        "interrupts",
        {"request": "r4"},
        expect=("interrupted", "interrupted", "success"),
        then=({"resume": False}, {"resume": 0}),
    ),
    # RetryPolicy: succeeds on the third attempt / gives up after three
    Case("retry-recovers", "retry", {"fail_until": 3}, expect=("success",)),
    Case("retry-exhausted", "retry", {"fail_until": 99}, expect=("error",)),
    # a node error while its sibling in the same superstep succeeds
    Case("node-error", "node_error", {"sku": "a1"}, expect=("error",)),
    # rerun after an error (input None): the sibling that succeeded is not run again
    Case(
        "node-error-rerun",
        "node_error",
        {"sku": "b2"},
        expect=("error", "error"),
        then=({"input": None},),
    ),
    # an error raised inside a subgraph
    Case(
        "subgraph-error",
        "subgraph_interrupt",
        {"topic": "boom"},
        expect=("error",),
        subgraphs=True,
    ),
    # LLM tokens from an async node and a sync node in parallel, plus a whole message
    Case("messages-tokens", "messages", {"topic": "cats"}, expect=("success",)),
    # functional API: parallel @task calls, an LLM inside a task, custom events
    Case(
        "functional-tasks",
        "functional",
        {"nums": [1, 2, 3]},
        expect=("success",),
    ),
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
        expect=("interrupted", "interrupted", "success"),
        then=({"resume": "looks good"}, {"resume": "ship it"}),
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
