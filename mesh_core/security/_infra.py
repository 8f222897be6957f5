"""Who may do what in Redis, NATS and etcd: one user per tier, least privilege.

The permissions are data derived from the backend modules that name every key and
subject (``mesh_core.adapters.*.keys/subjects``), rendered three ways:

* :func:`redis_acl_rules` -- ``ACL SETUSER`` rules (an ``aclfile`` line per user);
* :func:`nats_users` -- the ``authorization { users = [...] }`` entries of nats.conf;
* :func:`etcd_roles` -- etcd roles (key ranges with read or readwrite).

``lgmesh dev`` and the test fixtures apply them to their local servers with throwaway
passwords (:class:`InfraCredentials`); ``deploy/`` renders the same from Secrets.

What each tier needs, and nothing more:

============  ============================  ===========================  ==============
tier          Redis keys                    NATS                         etcd
============  ============================  ===========================  ==============
runtime       everything under the prefix   the mesh's subjects and its  readwrite
                                            streams (creates them)       under prefix
worker        checkpoints and fences        pull tasks, ack them, reply  --
              (subgraphs inside a task)     to owners, dead letters,
                                            hear task cancels
gateway       thread/run records, run       read run event logs          read under
              index, tenant indexes,        (consumers on the events     prefix
              assistants, schedules         stream, direct gets)
tools         tool idempotency (+ demo)     --                           --
llm           LLM cache, idempotency,       --                           --
              usage, rate buckets
============  ============================  ===========================  ==============

Each tier's NATS inbox prefix is its own (``_INBOX_<tier>``), so no tier can read
another tier's replies or its event deliveries.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from mesh_core.adapters.etcd.keys import EtcdKeys
from mesh_core.adapters.nats.subjects import NatsNames

__all__ = [
    "INFRA_TIERS",
    "EtcdRole",
    "InfraCredentials",
    "InfraUser",
    "NatsPermissions",
    "etcd_roles",
    "inbox_prefix",
    "nats_users",
    "redis_acl_rules",
    "url_with_user",
]

#: Tiers with their own backend users (a runtime in ``--role worker`` is "worker").
INFRA_TIERS = ("runtime", "worker", "gateway", "tools", "llm")

#: Redis commands no tier needs: server administration and whole-keyspace commands.
_REDIS_COMMANDS = "+@all -@admin -@dangerous +info +client|setinfo +client|setname"


def inbox_prefix(tier: str) -> str:
    """The NATS inbox prefix of a tier's connections (replies, consumer deliveries)."""
    return f"_INBOX_{tier}"


# -- Redis -----------------------------------------------------------------------------
def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _redis_patterns(tier: str, prefix: str) -> list[str]:
    p = _glob_escape(prefix)
    thread = p + ":{*}"  # a thread's hash-tagged keys (ids carry no '{', '}' or ':')
    if tier == "runtime":
        return [p + ":*"]
    if tier == "worker":
        return [thread + ":cp:*", thread + ":fence"]
    if tier == "gateway":
        return [
            thread + ":thread",
            thread + ":runs",
            thread + ":run:*",
            thread + ":queue",
            p + ":runindex:*",
            p + ":runs:active",
            p + ":tenant:*",
            p + ":sched:*",
        ]
    if tier == "tools":
        return [p + ":tool:*", p + ":demo:*"]
    if tier == "llm":
        return [p + ":llm:*", p + ":{rl}:*"]
    raise ValueError(f"unknown tier {tier!r}")


def redis_acl_rules(tier: str, prefix: str, password: str) -> str:
    """ACL SETUSER rules of a tier's user (without the user name)."""
    keys = " ".join("~" + pat for pat in _redis_patterns(tier, prefix))
    return f"on >{password} resetkeys {keys} resetchannels {_REDIS_COMMANDS}"


# -- NATS ------------------------------------------------------------------------------
@dataclass(frozen=True)
class NatsPermissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def _stream_api(stream: str) -> list[str]:
    """Every JetStream API subject about one stream (management, consumers, reads)."""
    return [
        f"$JS.API.STREAM.*.{stream}",
        f"$JS.API.STREAM.MSG.*.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.CONSUMER.*.{stream}",
        f"$JS.API.CONSUMER.*.{stream}.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>",
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def nats_permissions(tier: str, prefix: str) -> NatsPermissions:
    n = NatsNames(prefix)
    base = n.events_wildcard.removesuffix(".events.>")  # the subjects' first token(s)
    inbox = inbox_prefix(tier) + ".>"
    if tier == "runtime":
        publish = [
            base + ".>",
            "$JS.API.INFO",
            "$JS.API.STREAM.NAMES",
            "$JS.API.STREAM.LIST",
            *_stream_api(n.events_stream),
            *_stream_api(n.tasks_stream),
            *_stream_api(n.dead_letter_stream),
            inbox,
            inbox_prefix("worker") + ".>",  # answers to a worker's @task calls
        ]
        subscribe = [base + ".>", inbox]
    elif tier == "worker":
        tasks, consumer = n.tasks_stream, n.tasks_consumer
        publish = [
            "$JS.API.INFO",
            f"$JS.API.CONSUMER.INFO.{tasks}.{consumer}",
            f"$JS.API.CONSUMER.MSG.NEXT.{tasks}.{consumer}",
            f"$JS.ACK.{tasks}.>",
            n.task_reply("*"),
            n.dead_letter_subject,
            inbox,
        ]
        subscribe = [n.task_cancel_wildcard, inbox]
    elif tier == "gateway":
        events = n.events_stream
        publish = [
            "$JS.API.INFO",
            "$JS.API.STREAM.NAMES",
            f"$JS.API.STREAM.INFO.{events}",
            f"$JS.API.STREAM.MSG.GET.{events}",
            f"$JS.API.DIRECT.GET.{events}",
            f"$JS.API.DIRECT.GET.{events}.>",
            f"$JS.API.CONSUMER.CREATE.{events}",
            f"$JS.API.CONSUMER.CREATE.{events}.>",
            f"$JS.API.CONSUMER.DELETE.{events}.>",
            f"$JS.API.CONSUMER.INFO.{events}.>",
            f"$JS.FC.{events}.>",
            inbox,
        ]
        subscribe = [inbox]
    elif tier in ("tools", "llm"):
        publish, subscribe = [], []
    else:
        raise ValueError(f"unknown tier {tier!r}")
    return NatsPermissions(tuple(publish), tuple(subscribe))


def _nats_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{s}"' for s in items) + "]"


def nats_users(users: Mapping[str, InfraUser], prefix: str) -> list[str]:
    """nats.conf user entries (``{user: ..., password: ..., permissions: {...}}``)."""
    out = []
    for tier, user in users.items():
        perms = nats_permissions(tier, prefix)
        out.append(
            f'{{user: "{user.username}", password: "{user.password}", permissions: {{'
            f"publish: {{allow: {_nats_list(perms.publish)}}}, "
            f"subscribe: {{allow: {_nats_list(perms.subscribe)}}}}}}}"
        )
    return out


# -- etcd ------------------------------------------------------------------------------
@dataclass(frozen=True)
class EtcdRole:
    name: str
    key: str  # start of the range
    range_end: str  # end of the range (prefix + 1)
    permission: str  # "READ" or "READWRITE"


def _prefix_end(key: str) -> str:
    return key[:-1] + chr(ord(key[-1]) + 1)


def etcd_roles(prefix: str) -> dict[str, EtcdRole]:
    """The etcd role of each tier that uses etcd (runtime, gateway)."""
    root = EtcdKeys(prefix).root
    return {
        "runtime": EtcdRole(f"{prefix}-runtime", root, _prefix_end(root), "READWRITE"),
        "gateway": EtcdRole(f"{prefix}-gateway", root, _prefix_end(root), "READ"),
    }


# -- credentials -----------------------------------------------------------------------
@dataclass(frozen=True)
class InfraUser:
    username: str
    password: str


@dataclass(frozen=True)
class InfraCredentials:
    """A user per tier for one mesh (prefix), plus the admin that set them up."""

    prefix: str
    users: Mapping[str, InfraUser]

    @classmethod
    def generate(cls, prefix: str) -> InfraCredentials:
        return cls(
            prefix,
            {
                tier: InfraUser(f"{prefix}-{tier}", secrets.token_urlsafe(18))
                for tier in INFRA_TIERS
            },
        )

    def user(self, tier: str) -> InfraUser:
        return self.users[tier]


def url_with_user(url: str, user: InfraUser | None) -> str:
    """``url`` with ``user``'s name and password in it (replacing any already there)."""
    if user is None:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    auth = f"{quote(user.username, safe='')}:{quote(user.password, safe='')}"
    return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, parts.fragment))
