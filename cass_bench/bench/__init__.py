"""Benchmark result files: loading pytest-benchmark JSON, comparing runs, harness/plain ratios."""
