"""The ``lgmesh`` command: ``lgmesh dev`` runs the whole mesh locally; one sub-command per service."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lgmesh", description="LangGraph Mesh")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "servers", help="start etcd, nats-server and valkey locally and print their URLs"
    )
    ns = parser.parse_args(argv)
    if ns.command == "servers":
        import signal

        from mesh_core.localservers import LocalServers

        with LocalServers() as servers:
            for k, v in servers.env().items():
                print(f"export {k}={v}", flush=True)
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
