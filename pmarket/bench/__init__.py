"""Benchmarks behind ``pmarket bench``: figures, never pass/fail tests."""
