"""`synth` command line: one subcommand per pipeline step, each ending with a JSON summary line.

Each command lives in its own module under `synth_core.commands`, exposing `add_parser(subparsers)`
which registers the subcommand and sets `run(args) -> int` as its handler. Heavy imports stay inside
`run`, so `synth --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

# subcommand modules under synth_core.commands: the config helper, then the steps in the order a pipeline runs them
COMMAND_MODULES = ("config", "refresh", "validate", "train", "generate", "gate", "publish", "run", "bench")


def emit(summary: dict) -> None:
    """Print the command's key figures as the last stdout line, one JSON object."""
    sys.stdout.write(json.dumps(summary, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synth", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"synth_core.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from synth_core.config import ConfigError
    from synth_core.store import StoreError, TransientStoreError

    try:
        return args.run(args)
    except ConfigError as exc:
        logging.getLogger("synth").error("%s", exc)
        emit({"error": str(exc), "kind": "config"})
        return 2
    except StoreError as exc:  # the artifact store or a destination: unreachable, or refusing the request
        logging.getLogger("synth").error("%s", exc)
        emit({"error": str(exc), "kind": "store_unreachable" if isinstance(exc, TransientStoreError) else "store"})
        return 1


if __name__ == "__main__":
    sys.exit(main())
