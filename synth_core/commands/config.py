"""`synth config`: what every key of a domain YAML means (`explain`), and the YAML's JSON Schema (`schema`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("config", help="explain a domain config's keys, or print the domain YAML's JSON Schema")
    kinds = parser.add_subparsers(dest="config_command", required=True)
    explain = kinds.add_parser("explain", help="every key: its value in DOMAIN_YAML, its default and its meaning")
    explain.add_argument("domain_yaml", type=Path)
    explain.add_argument("--changed", action="store_true", help="only keys whose value differs from the default")
    explain.set_defaults(run=run_explain)
    schema = kinds.add_parser("schema", help="JSON Schema of a domain YAML, for editors and CI checks")
    schema.add_argument("--out", type=Path, help="write it here instead of stdout")
    schema.set_defaults(run=run_schema)


def run_explain(args: argparse.Namespace) -> int:
    from synth_core.cli import emit
    from synth_core.config import load_domain
    from synth_core.config_reference import explain

    config = load_domain(args.domain_yaml)
    rows = explain(config)
    for row in rows:
        if row.get("section"):
            if not args.changed:
                print(f"\n[{row['key']}]  {row['help']}")
        elif row["changed"] or not args.changed:
            mark = "*" if row["changed"] else " "
            print(f"{mark} {row['key']} = {json.dumps(row['value'])}   (default {json.dumps(row['default'])}; "
                  f"{row['type']})\n      {row['help']}")
    emit({"command": "config explain", "domain": config.name, "keys": sum(not r.get("section") for r in rows),
          "changed": [r["key"] for r in rows if r.get("changed")]})
    return 0


def run_schema(args: argparse.Namespace) -> int:
    from synth_core.config_reference import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.out:
        args.out.write_text(text)
        print(json.dumps({"command": "config schema", "out": str(args.out)}))
    else:
        print(text, end="")
    return 0
