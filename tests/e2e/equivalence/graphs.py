"""Graphs of the equivalence suite: each one exercises a LangGraph feature.

The same objects run in-process (the reference) and inside the mesh's runtimes (imported
through ``graphs.yaml``), so nothing here may depend on process-local state: attempt
numbers come from LangGraph's ``Runtime.execution_info``, token streams from a fake model
with a fixed script.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.func import entrypoint, task
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from langgraph.types import Command, RetryPolicy, Send, interrupt


class InventoryError(Exception):
    """A domain error raised by a node (its type name must survive the mesh)."""


# -- conditional edges ----------------------------------------------------------------------
class RouteState(TypedDict, total=False):
    x: int
    path: Annotated[list[str], operator.add]
    result: str


class RouteContext(TypedDict, total=False):
    label: str


def _route_builder() -> StateGraph[Any, Any, Any, Any]:
    def classify(state: RouteState, runtime: Runtime[RouteContext]) -> dict[str, Any]:
        label = (runtime.context or {}).get("label", "none")
        return {"path": [f"classify[{label}]"]}

    def route(state: RouteState, config: RunnableConfig) -> str:
        # a run's configurable reaches edges and nodes
        threshold = int(config.get("configurable", {}).get("threshold", 10))
        x = state.get("x", 0)
        return "big" if x > threshold else "small" if x >= 0 else "negative"

    def big(state: RouteState) -> dict[str, Any]:
        return {"path": ["big"], "result": f"big:{state['x']}"}

    def small(state: RouteState) -> dict[str, Any]:
        return {"path": ["small"], "result": f"small:{state['x']}"}

    b = StateGraph(RouteState, context_schema=RouteContext)
    b.add_node("classify", classify)
    b.add_node("big", big)
    b.add_node("small", small)
    b.add_edge(START, "classify")
    b.add_conditional_edges("classify", route, {"big": "big", "small": "small", "negative": END})
    b.add_edge("big", END)
    b.add_edge("small", END)
    return b


conditional = _route_builder().compile()


# -- parallel branches with reducers + custom events ----------------------------------------
class FanState(TypedDict, total=False):
    seed: int
    items: Annotated[list[str], operator.add]
    total: Annotated[int, operator.add]
    summary: str


def _fan_builder() -> StateGraph[Any, Any, Any, Any]:
    def start(state: FanState) -> dict[str, Any]:
        writer = get_stream_writer()
        writer({"phase": "start", "seed": state.get("seed", 0)})
        writer("a plain string event")
        writer([1, 2.5, None, True])
        return {"items": ["start"], "total": 0}

    def branch(name: str, factor: int) -> Any:
        async def run(state: FanState) -> dict[str, Any]:
            writer = get_stream_writer()
            for i in range(2):
                writer({"branch": name, "tick": i})
            return {"items": [name], "total": state.get("seed", 0) * factor}

        return run

    def join(state: FanState) -> dict[str, Any]:
        get_stream_writer()({"phase": "join", "n": len(state.get("items", []))})
        return {"summary": ",".join(sorted(state.get("items", []))) + f"={state.get('total', 0)}"}

    b = StateGraph(FanState)
    b.add_node("start", start)
    for name, factor in (("left", 1), ("mid", 10), ("right", 100)):
        b.add_node(name, branch(name, factor))
        b.add_edge("start", name)
    b.add_node("join", join)
    b.add_edge(["left", "mid", "right"], "join")
    b.add_edge(START, "start")
    b.add_edge("join", END)
    return b


parallel = _fan_builder().compile()


# -- Send (map-reduce) ----------------------------------------------------------------------
class MapState(TypedDict, total=False):
    words: list[str]
    lengths: Annotated[list[int], operator.add]
    longest: str


class WordState(TypedDict):
    word: str


def _send_builder() -> StateGraph[Any, Any, Any, Any]:
    def plan(state: MapState) -> dict[str, Any]:
        return {"lengths": []}

    def fan_out(state: MapState) -> list[Send]:
        return [Send("measure", {"word": w}) for w in state.get("words", [])]

    def measure(state: WordState) -> dict[str, Any]:
        get_stream_writer()({"measured": state["word"]})
        return {"lengths": [len(state["word"])]}

    def reduce(state: MapState) -> dict[str, Any]:
        words = state.get("words", [])
        return {"longest": max(words, key=len) if words else ""}

    b = StateGraph(MapState)
    b.add_node("plan", plan)
    b.add_node("measure", measure)
    b.add_node("reduce", reduce)
    b.add_edge(START, "plan")
    b.add_conditional_edges("plan", fan_out, ["measure"])
    b.add_edge("measure", "reduce")
    b.add_edge("reduce", END)
    return b


send = _send_builder().compile()


class SignState(TypedDict, total=False):
    signers: list[str]
    signatures: Annotated[list[str], operator.add]


class SignerState(TypedDict):
    signer: str


def _send_interrupt_builder() -> StateGraph[Any, Any, Any, Any]:
    def fan_out(state: SignState) -> list[Send]:
        return [Send("sign", {"signer": s}) for s in state.get("signers", [])]

    def sign(state: SignerState) -> dict[str, Any]:
        answer = interrupt({"sign": state["signer"]})
        return {"signatures": [f"{state['signer']}={answer}"]}

    b = StateGraph(SignState)
    b.add_node("sign", sign)
    b.add_conditional_edges(START, fan_out, ["sign"])
    b.add_edge("sign", END)
    return b


send_interrupt = _send_interrupt_builder().compile()


# -- Command(goto/update), also from inside a subgraph to its parent -----------------------
class CmdState(TypedDict, total=False):
    n: int
    trail: Annotated[list[str], operator.add]


def _command_builder() -> StateGraph[Any, Any, Any, Any]:
    def inner(state: CmdState) -> Command[Any]:
        # jump out of the subgraph straight to a node of the parent graph
        return Command(graph=Command.PARENT, goto="finish", update={"trail": ["inner->parent"]})

    sb = StateGraph(CmdState)
    sb.add_node("inner", inner)
    sb.add_edge(START, "inner")
    child = sb.compile()

    def decide(state: CmdState) -> Command[Any]:
        n = state.get("n", 0)
        if n % 2 == 0:
            return Command(goto="even", update={"trail": ["decide"], "n": n + 1})
        return Command(goto=["odd", "child"], update={"trail": ["decide"]})

    def even(state: CmdState) -> dict[str, Any]:
        return {"trail": [f"even{state.get('n')}"]}

    def odd(state: CmdState) -> dict[str, Any]:
        return {"trail": ["odd"]}

    def finish(state: CmdState) -> dict[str, Any]:
        return {"trail": ["finish"]}

    b = StateGraph(CmdState)
    b.add_node("decide", decide, destinations=("even", "odd", "child"))
    b.add_node("even", even)
    b.add_node("odd", odd)
    b.add_node("child", child, destinations=("finish",))
    b.add_node("finish", finish)
    b.add_edge(START, "decide")
    b.add_edge("even", END)
    b.add_edge("odd", END)
    b.add_edge("finish", END)
    return b


command = _command_builder().compile()


# -- interrupt(): twice in one node, then a second node ------------------------------------
class AskState(TypedDict, total=False):
    request: str
    answers: Annotated[list[Any], operator.add]
    note: str
    result: str


def _ask_builder() -> StateGraph[Any, Any, Any, Any]:
    def ask(state: AskState) -> dict[str, Any]:
        first = interrupt({"q": "who", "request": state.get("request", "")})
        second = interrupt({"q": "how many", "who": first})
        return {"answers": [first, second]}

    def finish(state: AskState) -> dict[str, Any]:
        return {"result": f"{state.get('note', '-')}:{state.get('answers')}"}

    b = StateGraph(AskState)
    b.add_node("ask", ask)
    b.add_node("finish", finish)
    b.add_edge(START, "ask")
    b.add_edge("ask", "finish")
    b.add_edge("finish", END)
    return b


interrupts = _ask_builder().compile()


# -- interrupt() inside a subgraph; custom events and updates from the subgraph ------------
class OuterState(TypedDict, total=False):
    topic: str
    log: Annotated[list[str], operator.add]
    verdict: str


def _nested_builder() -> StateGraph[Any, Any, Any, Any]:
    async def c_prepare(state: OuterState) -> dict[str, Any]:
        get_stream_writer()({"child": "prepare", "topic": state.get("topic")})
        if state.get("topic") == "boom":
            raise InventoryError("the child graph failed on 'boom'")
        msg = await _fake(f"thinking about {state.get('topic')}").ainvoke("go")
        return {"log": ["c_prepare", str(msg.content)]}

    def c_review(state: OuterState) -> dict[str, Any]:
        get_stream_writer()({"child": "review"})
        verdict = interrupt({"review": state.get("topic"), "log": state.get("log", [])})
        return {"log": ["c_review"], "verdict": str(verdict)}

    sb = StateGraph(OuterState)
    sb.add_node("c_prepare", c_prepare)
    sb.add_node("c_review", c_review)
    sb.add_edge(START, "c_prepare")
    sb.add_edge("c_prepare", "c_review")
    sb.add_edge("c_review", END)
    child = sb.compile()

    def before(state: OuterState) -> dict[str, Any]:
        return {"log": ["before"]}

    def after(state: OuterState) -> dict[str, Any]:
        get_stream_writer()({"parent": "after", "verdict": state.get("verdict")})
        return {"log": ["after"]}

    b = StateGraph(OuterState)
    b.add_node("before", before)
    b.add_node("child", child)
    b.add_node("after", after)
    b.add_edge(START, "before")
    b.add_edge("before", "child")
    b.add_edge("child", "after")
    b.add_edge("after", END)
    return b


subgraph_interrupt = _nested_builder().compile()


# -- interrupt() in parallel tasks (resumed with a map of interrupt id -> value) ----------
class VoteState(TypedDict, total=False):
    motion: str
    votes: Annotated[list[str], operator.add]
    outcome: str


def _vote_builder() -> StateGraph[Any, Any, Any, Any]:
    def voter(name: str) -> Any:
        def run(state: VoteState) -> dict[str, Any]:
            answer = interrupt({"voter": name, "motion": state.get("motion", "")})
            return {"votes": [f"{name}:{answer}"]}

        return run

    def clerk(state: VoteState) -> dict[str, Any]:
        # a sibling that does not interrupt: its write is kept while the others wait
        return {"votes": ["clerk:present"]}

    def tally(state: VoteState) -> dict[str, Any]:
        return {"outcome": "|".join(sorted(state.get("votes", [])))}

    b = StateGraph(VoteState)
    for name in ("alice", "bob", "carol"):
        b.add_node(name, voter(name))
        b.add_edge(START, name)
    b.add_node("clerk", clerk)
    b.add_edge(START, "clerk")
    b.add_node("tally", tally)
    b.add_edge(["alice", "bob", "carol", "clerk"], "tally")
    b.add_edge("tally", END)
    return b


parallel_interrupt = _vote_builder().compile()


# -- interrupts two subgraph levels down, in parallel Send tasks (nested resume map) -------
class TeamState(TypedDict, total=False):
    team: str
    notes: Annotated[list[str], operator.add]
    reports: Annotated[list[str], operator.add]


class HqState(TypedDict, total=False):
    teams: list[str]
    reports: Annotated[list[str], operator.add]


def _nested_parallel_builder() -> StateGraph[Any, Any, Any, Any]:
    def desk_ask(state: TeamState) -> dict[str, Any]:
        get_stream_writer()({"desk": state.get("team")})
        answer = interrupt({"team": state.get("team"), "notes": state.get("notes", [])})
        return {"notes": [f"desk:{answer}"]}

    desk_b = StateGraph(TeamState)
    desk_b.add_node("desk_ask", desk_ask)
    desk_b.add_edge(START, "desk_ask")
    desk = desk_b.compile()

    def brief(state: TeamState) -> dict[str, Any]:
        return {"notes": [f"brief:{state.get('team')}"]}

    def report(state: TeamState) -> dict[str, Any]:
        return {"reports": [f"{state.get('team')}:{'+'.join(state.get('notes', []))}"]}

    team_b = StateGraph(TeamState)
    team_b.add_node("brief", brief)
    team_b.add_node("desk", desk)
    team_b.add_node("report", report)
    team_b.add_edge(START, "brief")
    team_b.add_edge("brief", "desk")
    team_b.add_edge("desk", "report")
    team = team_b.compile()

    def dispatch(state: HqState) -> list[Send]:
        return [Send("team", {"team": t}) for t in state.get("teams", [])]

    async def team_node(state: TeamState) -> dict[str, Any]:
        out = await team.ainvoke(state)
        return {"reports": out.get("reports", [])}

    b = StateGraph(HqState)
    b.add_node("team", team_node)
    b.add_conditional_edges(START, dispatch, ["team"])
    b.add_edge("team", END)
    return b


nested_parallel = _nested_parallel_builder().compile()


# -- RetryPolicy: succeeds on the 3rd attempt / never succeeds -----------------------------
class RetryState(TypedDict, total=False):
    fail_until: int
    attempts: int
    done: str


def _retry_builder(max_attempts: int) -> StateGraph[Any, Any, Any, Any]:
    def flaky(state: RetryState, runtime: Runtime[Any]) -> dict[str, Any]:
        info = runtime.execution_info
        attempt = info.node_attempt if info is not None else 1
        get_stream_writer()({"attempt": attempt})
        if attempt < state.get("fail_until", 0):
            raise InventoryError(f"flaky backend on attempt {attempt}")
        return {"attempts": attempt}

    def done(state: RetryState) -> dict[str, Any]:
        return {"done": f"after {state.get('attempts')} attempts"}

    b = StateGraph(RetryState)
    b.add_node(
        "flaky",
        flaky,
        retry_policy=RetryPolicy(
            max_attempts=max_attempts,
            initial_interval=0.01,
            backoff_factor=1.0,
            jitter=False,
            retry_on=InventoryError,
        ),
    )
    b.add_node("done", done)
    b.add_edge(START, "flaky")
    b.add_edge("flaky", "done")
    b.add_edge("done", END)
    return b


retry = _retry_builder(max_attempts=3).compile()


# -- node errors (one branch fails while its sibling succeeds) -----------------------------
class ErrState(TypedDict, total=False):
    sku: str
    ok: Annotated[list[str], operator.add]


def _error_builder() -> StateGraph[Any, Any, Any, Any]:
    def check(state: ErrState) -> dict[str, Any]:
        return {"ok": ["check"]}

    # both async without awaits: LangGraph starts them in order on the event loop, so the
    # sibling has always finished (and its writes are kept) when the error is raised
    async def healthy(state: ErrState) -> dict[str, Any]:
        get_stream_writer()({"healthy": True})
        return {"ok": ["healthy"]}

    async def broken(state: ErrState) -> dict[str, Any]:
        get_stream_writer()({"broken": "about to fail"})
        raise InventoryError(f"sku {state.get('sku')!r} is out of stock (warehouse 7)")

    def never(state: ErrState) -> dict[str, Any]:
        return {"ok": ["never"]}

    b = StateGraph(ErrState)
    b.add_node("check", check)
    b.add_node("healthy", healthy)
    b.add_node("broken", broken)
    b.add_node("never", never)
    b.add_edge(START, "check")
    b.add_edge("check", "healthy")
    b.add_edge("check", "broken")
    b.add_edge(["healthy", "broken"], "never")
    b.add_edge("never", END)
    return b


node_error = _error_builder().compile()


# -- messages: LLM tokens streamed from nodes (async, sync, in parallel) -------------------
class ChatState(TypedDict, total=False):
    topic: str
    messages: Annotated[list[AnyMessage], add_messages]
    summary: str


def _fake(text: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=text)]))


def _chat_builder() -> StateGraph[Any, Any, Any, Any]:
    async def poet(state: ChatState) -> dict[str, Any]:
        msg = await _fake(f"roses about {state.get('topic')} are red and blue").ainvoke("go")
        return {"messages": [msg]}

    def critic(state: ChatState) -> dict[str, Any]:
        msg = _fake(f"the {state.get('topic')} poem is fine I guess").invoke("go")
        return {"messages": [msg]}

    def editor(state: ChatState) -> dict[str, Any]:
        # a message that no model streamed: LangGraph emits it whole on "messages"
        n = len(state.get("messages", []))
        return {
            "messages": [AIMessage(content=f"editor saw {n} messages", name="editor")],
            "summary": "ok",
        }

    b = StateGraph(ChatState)
    b.add_node("poet", poet)
    b.add_node("critic", critic)
    b.add_node("editor", editor)
    b.add_edge(START, "poet")
    b.add_edge(START, "critic")
    b.add_edge(["poet", "critic"], "editor")
    b.add_edge("editor", END)
    return b


messages = _chat_builder().compile()


# -- functional API ------------------------------------------------------------------------
@task
async def square(x: int) -> int:
    get_stream_writer()({"square": x})
    return x * x


@task
async def describe(total: int) -> str:
    msg = await _fake(f"sum of squares is {total}").ainvoke("go")
    return str(msg.content)


@entrypoint()
async def functional(inputs: dict[str, Any]) -> dict[str, Any]:
    nums = list(inputs.get("nums", []))
    futures = [square(n) for n in nums]
    squares = [await f for f in futures]
    text = await describe(sum(squares))
    get_stream_writer()({"entrypoint": "done", "n": len(nums)})
    return {"squares": squares, "text": text}


@task
def draft(topic: str) -> str:
    return f"a draft about {topic}"


@task
def review(text: str) -> str:
    # interrupt() inside a task: the task's result is cached once it is answered
    return str(interrupt({"review": text}))


@entrypoint()
def functional_interrupt(inputs: dict[str, Any]) -> dict[str, Any]:
    text = draft(inputs.get("topic", "")).result()
    note = review(text).result()
    decision = interrupt({"draft": text, "note": note, "action": "approve?"})
    return {"draft": text, "note": note, "decision": decision}


# -- recursion limit -----------------------------------------------------------------------
class LoopState(TypedDict, total=False):
    count: int


def _loop_builder() -> StateGraph[Any, Any, Any, Any]:
    def tick(state: LoopState) -> dict[str, Any]:
        return {"count": state.get("count", 0) + 1}

    def tock(state: LoopState) -> dict[str, Any]:
        get_stream_writer()({"tock": state.get("count", 0)})
        return {}

    b = StateGraph(LoopState)
    b.add_node("tick", tick)
    b.add_node("tock", tock)
    b.add_edge(START, "tick")
    b.add_edge("tick", "tock")
    b.add_edge("tock", "tick")  # never ends
    return b


recursion = _loop_builder().compile()
