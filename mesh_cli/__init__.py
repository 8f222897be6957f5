"""The ``lgmesh`` command line, the local mesh (``lgmesh dev``) and the service launcher."""

from mesh_cli._main import build_parser, main

__all__ = ["build_parser", "main"]
