"""Read YAML into plain Python while remembering where each value came from.

PyYAML (its C parser when available) builds the node graph; we convert nodes ourselves
because no YAML library does all of what a config contract needs at once: line numbers for
every field path, duplicate keys as errors (PyYAML silently keeps the last one), a bound on
alias expansion (a "billion laughs" file is 1 KB on disk and gigabytes in memory), and the
source text of unquoted scalars so that `version: 1.10` can be reported as "quote it".

A first pass over the parser's events (the C parser is iterative and stops at once) refuses
what must never reach the composer: explicit tags (`!!binary`, `!foo`: a config is plain data)
and nesting deeper than MAX_DEPTH. libyaml's composer recurses in C, so a file nested a few
thousand levels deep crashes the whole process (a segmentation fault, not an exception): one
such config would take every DAG of the DAG file down with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from esteira.errors import ConfigError, Problem

_Loader: type[yaml.CSafeLoader] | type[yaml.SafeLoader]
try:  # the C parser is ~10x faster; the DAG processor re-parses configs all the time
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml is in the pinned wheels
    from yaml import SafeLoader as _Loader

MAX_FILE_BYTES = 1_000_000
MAX_EXPANDED_NODES = 20_000
MAX_DEPTH = 64  # a config.yaml needs 8 levels; environments.yaml 5
_OPEN_EVENTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE_EVENTS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
_TAGGED_EVENTS = (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_DECIMAL_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")  # 3_600 is 3600 in any YAML reader
_STR_TAG = "tag:yaml.org,2002:str"

Path_ = tuple[str | int, ...]


@dataclass
class YamlDocument:
    """Plain data plus where each field path sits in the file."""

    file: Path
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    # source text of plain scalars YAML turned into something other than a string
    raw_scalars: dict[Path_, str] = field(default_factory=dict)

    def line_for(self, path: Path_) -> int | None:
        """The line of the path, or of its nearest ancestor that exists in the file."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


class _Converter:
    def __init__(self, file: Path) -> None:
        self.file = file
        self.constructor = SafeConstructor()
        self.lines: dict[Path_, int] = {}
        self.raw: dict[Path_, str] = {}
        self.problems: list[Problem] = []
        self.expanded = 0
        self.active: set[int] = set()
        self.depth = 0  # of expansion, aliases and merge keys included: they nest past MAX_DEPTH

    def fail(self, message: str, path: Path_, node: Node) -> None:
        self.problems.append(Problem(message, path, node.start_mark.line + 1))

    def convert(self, node: Node, path: Path_) -> Any:
        self.expanded += 1
        if self.expanded > MAX_EXPANDED_NODES:
            raise _TooLarge(path, node)
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, ScalarNode):
            if node.tag != _STR_TAG and not node.style:  # plain (unquoted)
                self.raw[path] = node.value
            return self.scalar(node, path)
        if id(node) in self.active:
            self.fail("an alias refers to itself (recursive anchor); expand it by hand", path, node)
            return None
        if self.depth >= MAX_DEPTH:
            self.fail(f"nested more than {MAX_DEPTH} levels deep once aliases are expanded; "
                      "write the nested parts out", path, node)
            return None
        self.active.add(id(node))
        self.depth += 1
        try:
            if isinstance(node, SequenceNode):
                return tuple(self.convert(item, (*path, i)) for i, item in enumerate(node.value))
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
        finally:
            self.active.discard(id(node))
            self.depth -= 1
        self.fail(f"unsupported YAML node {node.tag}", path, node)  # pragma: no cover
        return None

    def scalar(self, node: ScalarNode, path: Path_) -> Any:
        """A plain scalar YAML resolves to a date, time or number it cannot build is an error here,
        with its line (PyYAML raises ValueError for `2026-02-30` and a timestamp whose offset
        overflows), not an exception that escapes the loader."""
        kind = node.tag.rsplit(":", 1)[-1]
        try:
            value = self.constructor.construct_object(node)
        except (ValueError, OverflowError, yaml.YAMLError) as exc:
            self.fail(f"YAML reads the unquoted {node.value!r} as a {kind}, and it is not a valid one "
                      f"({exc}); fix it, or quote it to keep it as text: \"{node.value}\"", path, node)
            return node.value
        if isinstance(value, str) and "\x00" in value:
            self.fail("holds a NUL character, which no process, database or AWS API can carry", path, node)
        elif (kind == "int" and not _DECIMAL_INT.match(node.value)) or (kind == "float" and ":" in node.value):
            # YAML 1.1 reads 010 as 8 (octal), 0x10 as 16, 1:30 as 90 (base 60): rarely what was meant
            self.fail(f"YAML reads the unquoted {node.value!r} as the number {value!r}; write numbers in "
                      f"decimal, or quote it to keep it as text: \"{node.value}\"", path, node)
        return value

    def mapping(self, node: MappingNode, path: Path_) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for src in sources:
                    value = self.convert(src, path)
                    if not isinstance(value, dict):
                        self.fail("a merge key (<<) must refer to a mapping", path, src)
                        continue
                    for k, v in value.items():
                        merged.setdefault(k, v)
                continue
            if not isinstance(key_node, ScalarNode):
                self.fail("mapping keys must be plain scalars", path, key_node)
                continue
            key = self.scalar(key_node, path)
            try:
                hash(key)
            except TypeError:  # pragma: no cover - scalars are hashable
                self.fail("unhashable mapping key", path, key_node)
                continue
            line = key_node.start_mark.line + 1
            if key in seen:
                self.problems.append(
                    Problem(
                        f"duplicate key {key!r} (first defined on line {seen[key]}); "
                        "YAML would silently keep only the last one - remove one of them",
                        (*path, key),
                        line,
                    )
                )
                continue
            seen[key] = line
            self.lines[(*path, key)] = line
            out[key] = self.convert(value_node, (*path, key))
        for k, v in merged.items():
            out.setdefault(k, v)
        return out


class _TooLarge(Exception):
    def __init__(self, path: Path_, node: Node) -> None:
        self.path = path
        self.node = node


def read_config_bytes(file: Path) -> bytes:
    """The file's bytes; one over MAX_FILE_BYTES is refused before it is read whole."""
    try:
        with open(file, "rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(file, [Problem(f"cannot read file: {exc.strerror or exc}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(file, [Problem(f"file is over {MAX_FILE_BYTES} bytes (the limit); a config "
                                         "this large is a mistake (a generated or pasted file?)")])
    return raw


def _screen(text: str) -> Problem | None:
    """The first explicit tag or over-deep nesting in the event stream, before composing."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, _TAGGED_EVENTS) and event.tag is not None:
            return Problem(f"explicit YAML tag {event.tag!r}: config files hold plain values only "
                           "(text, numbers, booleans, lists, mappings); remove the tag, and quote the "
                           "value if it must stay text", (), _line(event))
        if isinstance(event, _OPEN_EVENTS):
            depth += 1
            if depth > MAX_DEPTH:
                return Problem(f"nested more than {MAX_DEPTH} levels deep; a config needs a handful",
                               (), _line(event))
        elif isinstance(event, _CLOSE_EVENTS):
            depth -= 1
    return None


def _line(event: yaml.Event) -> int | None:
    """The event's 1-based line: the parser marks every event (types-PyYAML allows it none)."""
    return event.start_mark.line + 1 if event.start_mark is not None else None


def load_yaml(file: Path, raw: bytes | None = None) -> YamlDocument:
    """Parse one YAML file (or `raw`, its bytes as read_config_bytes read them); every failure is a
    ConfigError naming the file and line."""
    raw = read_config_bytes(file) if raw is None else raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(file, [Problem(f"not valid UTF-8 (byte {exc.start})")]) from None
    try:
        screened = _screen(text)
        if screened is not None:
            raise ConfigError(file, [screened])
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        detail = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        raise ConfigError(file, [Problem(f"invalid YAML: {detail}", (), line)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, [Problem(f"invalid YAML: {exc}")]) from None
    if len(nodes) != 1 or nodes[0] is None:
        what = "is empty" if not nodes or nodes[0] is None else f"holds {len(nodes)} YAML documents"
        raise ConfigError(file, [Problem(f"file {what}; expected exactly one mapping")])
    conv = _Converter(file)
    try:
        data = conv.convert(nodes[0], ())
    except _TooLarge as exc:
        raise ConfigError(
            file,
            [
                Problem(
                    f"more than {MAX_EXPANDED_NODES} values after expanding aliases "
                    "(an alias bomb?); write the repeated parts out or use fewer aliases",
                    exc.path,
                    exc.node.start_mark.line + 1,
                )
            ],
        ) from None
    if conv.problems:
        raise ConfigError(file, conv.problems)
    return YamlDocument(file=file, data=data, lines=conv.lines, raw_scalars=conv.raw)
