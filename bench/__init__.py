"""Benchmarks (`make bench`): each script compares side by side in one run."""
