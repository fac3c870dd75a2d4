"""Benchmarks: throughput of the generator and trainer, and the quality comparison against hard prompts."""
