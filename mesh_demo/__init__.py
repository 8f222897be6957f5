"""Demo graphs and tools for LangGraph Mesh (what `lgmesh dev` and the examples load)."""
