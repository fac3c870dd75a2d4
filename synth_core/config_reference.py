"""The domain config described from its own dataclasses: every key with its value, default and help
(`synth config explain`), and a JSON Schema of the domain YAML (`synth config schema`) that editors
can validate domain files against. Generated, never hand-written, so it cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from synth_core.config import DomainConfig

SET_ON_LOAD = ("base_dir",)  # filled in by load_domain, not written in a YAML


@dataclass(frozen=True)
class Setting:
    key: str  # dotted, e.g. "gate.leakage_margin"
    type: str
    default: Any
    help: str


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(v) for v in typing.get_args(tp))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is list:
        return f"list[{_type_name(typing.get_args(tp)[0])}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def settings(cls: type = DomainConfig, prefix: str = "") -> Iterator[Setting]:
    """Every key of the config, sections first and then their keys, in declaration order."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in SET_ON_LOAD:
            continue
        tp = hints[field.name]
        key = prefix + field.name
        if dataclasses.is_dataclass(tp):
            yield Setting(key, "section", None, field.metadata.get("help", ""))
            yield from settings(tp, key + ".")
        else:
            yield Setting(key, _type_name(tp), _default(field), field.metadata.get("help", ""))


def _value_at(config: DomainConfig, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _plain(value: Any) -> Any:
    """Lists of config entries (e.g. `checks`) as the mappings a YAML holds."""
    if isinstance(value, list):
        return [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]
    return value


def explain(config: DomainConfig) -> list[dict[str, Any]]:
    """Each key with its value in `config`, its default, whether it was changed, and what it means."""
    rows = []
    for setting in settings():
        if setting.type == "section":
            rows.append({"key": setting.key, "section": True, "help": setting.help})
            continue
        value = _plain(_value_at(config, setting.key))
        default = None if setting.default is dataclasses.MISSING else setting.default
        rows.append({"key": setting.key, "value": value, "default": default, "changed": value != default,
                     "type": setting.type, "help": setting.help})
    return rows


def _schema_of(tp: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return dataclass_schema(tp)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema_of(a) for a in args]}
    if origin is list:
        return {"type": "array", "items": _schema_of(args[0])}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", type(None): "null"}
    return {"type": simple[tp]}


def dataclass_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties, required = {}, []
    for field in dataclasses.fields(cls):
        if field.name in SET_ON_LOAD:
            continue
        prop = _schema_of(hints[field.name])
        if field.metadata.get("help"):
            prop["description"] = field.metadata["help"]
        if dataclasses.is_dataclass(hints[field.name]):
            pass  # a section: its keys carry the defaults
        elif (default := _default(field)) is dataclasses.MISSING:
            required.append(field.name)
        else:
            prop["default"] = default
        properties[field.name] = prop
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a domain YAML. Value ranges are checked on load, with messages that
    name the file, key and value; the schema covers keys and types, which is what an editor needs."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "synth domain config",
            **dataclass_schema(DomainConfig)}
