"""Peer implementations the benchmarks compare against; some run in their own virtualenv."""
