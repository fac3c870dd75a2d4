"""Synthetic text generation: soft-prompt sampling, the hard-prompt baseline, sharding, Parquet output."""
