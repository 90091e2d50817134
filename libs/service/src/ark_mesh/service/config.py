"""Typed configuration: one file (YAML or JSON) plus environment overrides.

Helm renders one file per service from its values; operators and tests override single fields
with environment variables without templating a new file. An override is
``<PREFIX>__<FIELD>__<SUBFIELD>=value`` (camelCase or snake_case field names, any letter case);
the value is read as YAML, so ``true``, ``5`` and ``[a, b]`` keep their types. Everything is
checked against the service's msgspec Struct, and an error names the field and where its value
came from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

from ark_mesh.service.errors import ConfigError

__all__ = ["ENV_PREFIX", "load_config"]

T = TypeVar("T")

ENV_PREFIX = "ARK_MESH"
CONFIG_FILE_VARIABLE = "ARK_MESH_CONFIG"


def load_config(
    config_type: type[T],
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    prefix: str = ENV_PREFIX,
) -> T:
    """Load ``config_type`` from ``path`` (or ``$ARK_MESH_CONFIG``), then apply env overrides.

    With no file at all the Struct's defaults apply, so a service starts with an embedded default.
    """
    env = os.environ if environ is None else environ
    source = path if path is not None else env.get(CONFIG_FILE_VARIABLE)
    data: dict[str, Any] = _read_file(Path(source)) if source else {}
    for variable, raw in sorted(env.items()):
        if not variable.startswith(prefix + "__"):
            continue
        keys = [k for k in variable[len(prefix) + 2 :].split("__") if k]
        if not keys:
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"environment variable {variable}: not a YAML value: {exc}") from exc
        _set_path(data, [_field_name(config_type, keys, i) for i in range(len(keys))], value)
    try:
        return msgspec.convert(data, config_type, strict=False)
    except msgspec.ValidationError as exc:
        where = f"{source}" if source else "defaults"
        raise ConfigError(
            f"invalid configuration ({where} + {prefix}__* overrides): {exc}"
        ) from exc


def _read_file(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping at the top level")
    return loaded


def _set_path(data: dict[str, Any], keys: list[str], value: Any) -> None:
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


_WORD = re.compile(r"[^a-z0-9]")


def _field_name(config_type: type[Any], keys: list[str], index: int) -> str:
    """Map an upper-case env token to the wire name of the field it denotes."""
    struct: Any = config_type
    for key in keys[:index]:
        struct = _field_type(struct, key)
    token = keys[index]
    if struct is not None:
        for field in msgspec.structs.fields(struct):
            if _norm(field.encode_name) == _norm(token) or _norm(field.name) == _norm(token):
                return field.encode_name
    return token.lower()


def _field_type(struct: Any, key: str) -> Any:
    if struct is None or not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
        return None
    for field in msgspec.structs.fields(struct):
        if _norm(field.encode_name) == _norm(key) or _norm(field.name) == _norm(key):
            candidate = field.type
            options = getattr(candidate, "__args__", None)
            if options:
                for option in options:
                    if isinstance(option, type) and issubclass(option, msgspec.Struct):
                        return option
            if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
                return candidate
            return None
    return None


def _norm(name: str) -> str:
    return _WORD.sub("", name.lower())
