"""Strict reading of the YAML or JSON files lbscrape takes (--metrics-config, the mixin's
--config): errors name the option, the file and the place, and a key given twice is an
error, since the parsers would otherwise keep the last one silently."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import yaml

from lbscrape.core.errors import ConfigError


class Where:
    """Raises errors that name the option, the file and the entry."""

    def __init__(self, option: str, source: str) -> None:
        self.option, self.source = option, source

    def fail(self, where: str, message: str) -> NoReturn:
        at = f"{where}: " if where else ""
        raise ConfigError(f"{self.option}: {self.source}: {at}{message}")


def read(path: str, option: str) -> str:
    """The file's text; ConfigError naming the option and path when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError:
        raise ConfigError(f"{option}: {path!r} is not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{option}: cannot read {path!r}: {e.strerror or e}") from None


def parse(text: str, err: Where) -> Any:
    """JSON for a .json file, YAML otherwise."""
    if err.source.endswith(".json"):
        try:
            return json.loads(text, object_pairs_hook=lambda pairs: _unique(pairs, err))
        except json.JSONDecodeError as e:
            err.fail(f"line {e.lineno}, column {e.colno}", f"not valid JSON: {e.msg}")
    try:
        _check_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), err)
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        err.fail(where, f"not valid YAML: {e.problem or e.context}")
    except yaml.YAMLError as e:
        err.fail("", f"not valid YAML: {e}")


def _unique(pairs: list[tuple[str, Any]], err: Where) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            err.fail("", f"key {k!r} appears twice in one object; merge the two")
        out[k] = v
    return out


def _check_duplicate_keys(node: Any, err: Where) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    err.fail(f"line {key.start_mark.line + 1}",
                             f"key {key.value!r} appears twice in one mapping; merge the two")
                seen.add(key.value)
            _check_duplicate_keys(value, err)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(item, err)
