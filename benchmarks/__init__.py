"""Benchmarks: scripts that print measured figures (see README)."""
