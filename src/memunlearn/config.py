"""Typed, frozen configs built from a params.yaml section (docs/architecture.md rule 2).

The library never reads params.yaml itself: a stage hands it a dict, and
``from_params`` turns it into the section's frozen dataclass. pydantic
checks every field strictly, nested mappings, tuple elements and optionals
included (``true`` is not an integer, ``"5"`` is not a number; a YAML list
is a tuple and an integer is a float); an unknown key is an error. Every
error of a section is reported at once, one line each, starting with its
full key path (``methods.salun.lr``) and ending with the fix. The class's
own ``validate()`` (ranges, registry names) runs after.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import typing
from typing import Any, Iterator, Mapping, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config

from .registry import UnknownNameError

C = TypeVar("C")

STRICT = ConfigDict(strict=True, extra="forbid")

_EXPECTED = {  # pydantic error type prefix -> what to write instead
    "int": "an integer", "float": "a number", "bool": "true or false", "string": "text",
    "dict": "a mapping {key: value}", "tuple": "a list [a, b]", "list": "a list [a, b]", "none": "null",
}


class ConfigError(ValueError):
    """Bad params: one line per problem, each naming the key path, the problem and the fix."""


def from_params(cls: type[C], params: Mapping[str, Any] | None, section: str = "") -> C:
    """Build dataclass ``cls`` from params section ``section``: strict types, no unknown keys, then ``validate()``."""
    where = section or cls.__name__
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}: got {_shown(params)}; write a mapping of keys to values, e.g. {{}}")
    try:
        document = json.dumps(dict(params))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: write plain YAML scalars, lists and mappings only ({exc})") from None
    try:
        config = _adapter(cls).validate_json(document, strict=True)
    except ValidationError as exc:
        raise ConfigError("\n".join(_explain(error, cls, section) for error in _unions(exc.errors()))) from None
    validate = getattr(config, "validate", None)
    if validate is not None:
        try:
            # a config several sections share (the grids) names the one it checks in its messages
            validate(section) if section and "section" in inspect.signature(validate).parameters else validate()
        except UnknownNameError as exc:
            raise keyed(exc, params, section) from None
    return config


@functools.cache
def _adapter(cls: type) -> TypeAdapter:
    """A strict validator for dataclass ``cls`` (pydantic reads ``__pydantic_config__`` off stdlib dataclasses)."""
    with_config(STRICT)(cls)
    return TypeAdapter(cls)


def _unions(errors: list[dict]) -> list[dict]:
    """A value that fits no member of a union (``int | Literal["auto"]``) gives one error per member, each located
    under the member's tag: merge them into one at the field, expecting any member."""
    out: list[dict] = []
    for error in errors:
        loc = tuple(error["loc"])
        prev = out[-1] if out else None
        if (prev is not None and len(loc) >= 2 and prev.get("_union") == loc[:-1]
                and error.get("input") == prev.get("input")):
            prev["msg"] += f" or {_member(error)}"
            continue
        if len(loc) >= 2 and _is_member_tag(loc[-1]):
            out.append({**error, "loc": loc[:-1], "type": "union", "_union": loc[:-1], "msg": _member(error)})
            continue
        out.append(error)
    return out


def _is_member_tag(part: Any) -> bool:
    """pydantic's tag of a union member (``int``, ``literal['auto']``), as opposed to a field name."""
    return isinstance(part, str) and (part in _EXPECTED or part == "str" or "[" in part)


def _member(error: Mapping[str, Any]) -> str:
    tag = str(error["loc"][-1])
    if tag.startswith("literal["):
        return tag[len("literal["):-1].replace("'", "")
    return _EXPECTED.get(error["type"].split("_")[0], tag)


def _explain(error: Mapping[str, Any], cls: type, section: str) -> str:
    """One pydantic error as one line: key path, problem, fix."""
    loc = error["loc"]
    path = _path(section, loc)
    kind = error["type"]
    if kind == "unexpected_keyword_argument":
        valid = sorted(f.name for f in dataclasses.fields(_nested(cls, loc[:-1])))
        return f"{path}: unknown key; " + (f"valid keys: {', '.join(valid)}" if valid else "this section takes none")
    if kind.startswith("missing"):
        return f"{path}: missing; add it"
    value = error.get("input")
    if kind == "union":
        return f"{path}: got {_shown(value)}; write {error['msg']}" + (_example(cls, str(loc[0])) if len(loc) == 1 else "")
    expected = _EXPECTED.get(kind.split("_")[0])
    if expected is None:
        return f"{path}: got {_shown(value)}; {error['msg'][0].lower()}{error['msg'][1:]}"
    fix = f"write {expected}"
    if kind.startswith("float") and isinstance(value, str) and _is_number(value):
        fix += f" (YAML reads {value} as text: write {float(value)!r})"
    elif len(loc) == 1:
        fix += _example(cls, str(loc[0]))
    return f"{path}: got {_shown(value)}; {fix}"


def _nested(cls: type, loc: tuple) -> type:
    """The dataclass at ``loc`` inside ``cls`` (a nested section such as ``data.text``), else ``cls``."""
    for part in loc:
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        inner = hints.get(part) if isinstance(part, str) else None
        if not (isinstance(inner, type) and dataclasses.is_dataclass(inner)):
            return cls
        cls = inner
    return cls


def _path(section: str, loc: tuple) -> str:
    path = section
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _example(cls: type, name: str) -> str:
    """``, e.g. <default>`` when field ``name`` has a default worth showing."""
    field = {f.name: f for f in dataclasses.fields(cls)}.get(name)
    default = getattr(field, "default", dataclasses.MISSING)
    if default in (dataclasses.MISSING, None, "", ()):
        return ""
    return f", e.g. {_shown(default)}"


def _shown(value: Any) -> str:
    """``value`` as it reads in YAML/JSON: true, null, "text", [1, 2]."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def keyed(exc: UnknownNameError, params: Mapping[str, Any], section: str) -> UnknownNameError:
    """``exc`` with the key path of the value that named the unknown entry (``unlearn.strategy: unknown ...``)."""
    if exc.key is not None or exc.name is None:
        return exc
    key = next(_paths_holding(exc.name, params, section), None)
    if key is None:
        return exc
    return UnknownNameError(f"{key}: {exc}", exc.name, key)


def _paths_holding(value: Any, tree: Any, path: str) -> Iterator[str]:
    if isinstance(tree, Mapping):
        for key, child in tree.items():
            yield from _paths_holding(value, child, f"{path}.{key}" if path else str(key))
    elif isinstance(tree, (list, tuple)):
        for i, child in enumerate(tree):
            yield from _paths_holding(value, child, f"{path}[{i}]")
    elif tree == value and isinstance(tree, str):
        yield path


def check_fraction(value: float, name: str, *, open_low: bool = False) -> None:
    low_ok = value > 0 if open_low else value >= 0
    if not (low_ok and value <= 1):
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise ConfigError(f"{name} must lie in {interval}, got {value}")


def check_positive(value: float, name: str) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value}")


def check_choice(value: str, choices: typing.Iterable[str], name: str) -> None:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}")


def dotted_leaves(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested params mapping (a params.yaml or a preset) as one ``section.key.subkey -> value`` per leaf; an
    empty mapping is a leaf."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, Mapping) and value:
            out |= dotted_leaves(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def with_preset(params: Any, preset: Mapping[str, Any]) -> Any:
    """``params`` with every leaf of ``preset`` set (a copy), as `dvc exp run -S` applies `memunlearn overrides`."""
    import copy

    out = copy.deepcopy(params)
    for dotted, value in dotted_leaves(preset).items():
        *sections, leaf = dotted.split(".")
        node = out
        for key in sections:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{dotted}: the params file holds a value where the preset has a section; "
                                  f"make {key} a mapping")
        node[leaf] = value
    return out


def nested_value(params: Any, *keys: str) -> Any:
    """``params[k1][k2]...``, or None where a key is missing or a level is not a mapping (checks read raw,
    possibly malformed params.yaml)."""
    for key in keys:
        if not isinstance(params, Mapping):
            return None
        params = params.get(key)
    return params


def used_methods(params: Any) -> list[tuple[str, str]]:
    """(params key, ``methods`` block name) of every method the run uses, read from raw params (non-names
    skipped, a section's own check reports them): unlearn.method, unlearn.subset_methods.<subset>, each grid's
    methods[i] (every section whose ``methods`` is a list), forgetting_quality.method, requests.method."""
    named: list[tuple[str, Any]] = [("unlearn.method", nested_value(params, "unlearn", "method"))]
    subset = nested_value(params, "unlearn", "subset_methods")
    named += [(f"unlearn.subset_methods.{k}", v) for k, v in (subset.items() if isinstance(subset, Mapping) else ())]
    for section, body in (params.items() if isinstance(params, Mapping) else ()):
        methods = nested_value(body, "methods")
        named += [(f"{section}.methods[{i}]", m) for i, m in enumerate(methods if isinstance(methods, list) else [])]
    named += [(f"{section}.method", nested_value(params, section, "method"))
              for section in ("forgetting_quality", "requests")]
    return [(key, name) for key, name in named if isinstance(name, str)]
