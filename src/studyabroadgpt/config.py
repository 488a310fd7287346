"""Typed configuration: YAML recipes + ``key=value`` overrides validated by pydantic.

Every stage (train, eval, quickstart…) declares its options as a pydantic model; this module turns a YAML file
plus command-line overrides into that model, and turns every mistake into a :class:`ConfigError` that names the
file, the line (for YAML syntax errors) and the field.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)


class ConfigError(Exception):
    pass


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; pass a YAML file (e.g. configs/smollm2-135m-cpu.yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    except ValueError as exc:  # PyYAML's resolvers: an unquoted impossible date (2024-13-45), a bad base-60 int
        raise ConfigError(f"{path}: invalid value: {exc} (quote it to keep it as text)") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested too deeply to be a configuration") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of options, got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. lora.r=8)")
    key, raw = item.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except (yaml.YAMLError, ValueError, RecursionError):  # not YAML: keep the text as the user typed it
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    out = dict(data)
    for item in overrides:
        keys, value = parse_override(item)
        node = out
        for k in keys[:-1]:
            child = node.get(k)
            node[k] = dict(child) if isinstance(child, dict) else {}
            node = node[k]
        node[keys[-1]] = value
    return out


def build(model_cls: type[T], data: dict[str, Any], origin: str = "<config>") -> T:
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        lines = [f"{origin}: invalid configuration:"]
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "<root>"
            got = repr(err["input"]) if "input" in err and not isinstance(err["input"], dict) else ""
            lines.append(f"  {field}: {err['msg']}" + (f" (got {got[:80]}{'…' if len(got) > 80 else ''})"
                                                        if got else ""))
        raise ConfigError("\n".join(lines)) from exc


def load_config(model_cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    data = load_yaml(path) if path else {}
    data = apply_overrides(data, overrides)
    return build(model_cls, data, str(path) if path else "<defaults>")
