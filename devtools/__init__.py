"""Tooling for tests and benchmarks that is no part of the app (e.g. starting a real dashboard
server for a browser to drive)."""
