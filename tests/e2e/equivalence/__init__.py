"""The "faithful to LangGraph" suite: every case runs in-process and through the mesh."""
