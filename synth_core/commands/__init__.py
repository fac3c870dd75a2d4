"""Subcommands of the `synth` CLI, one module each."""
