"""Benchmark apparatus for the proxy: see bench/README.md."""
