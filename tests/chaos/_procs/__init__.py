"""Subprocess entry points for the chaos tests, and a driver to talk to them."""
