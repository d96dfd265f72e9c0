"""``helm template`` for the pinned charts, without Helm: enough of Go's text/template and Helm's functions to render
the Seldon Core operator chart as the Helm release kfops installs would, so that tests read its objects.

Only what the pinned chart uses is implemented; anything else raises :class:`TemplateError`, so a chart bump that
needs more fails loudly instead of rendering something else. Certificates (``genCA``, ``genSignedCert``) render as
placeholders: tests look at objects, not at keys.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from tests.upstream import data


class TemplateError(AssertionError):
    """A template construct this renderer does not know."""


_TOKEN = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.S)


@dataclass
class _Node:
    kind: str  # text | action | if | with | define
    value: Any = None
    body: list[_Node] = field(default_factory=list)
    otherwise: list[_Node] = field(default_factory=list)


def _lex(source: str) -> list[tuple[str, str]]:
    """``(kind, value)``: literal text, or an action's contents, with ``{{-``/``-}}`` whitespace trimming applied."""
    pieces: list[tuple[str, str]] = []
    position = 0
    trim_next = False
    for match in _TOKEN.finditer(source):
        literal = source[position:match.start()]
        if trim_next:
            literal = literal.lstrip()
        if match.group(1):
            literal = literal.rstrip()
        pieces.append(("text", literal))
        pieces.append(("action", match.group(2)))
        trim_next = bool(match.group(3))
        position = match.end()
    tail = source[position:]
    pieces.append(("text", tail.lstrip() if trim_next else tail))
    return pieces


def _parse(pieces: list[tuple[str, str]]) -> list[_Node]:
    root: list[_Node] = []
    stack: list[tuple[_Node | None, list[_Node]]] = [(None, root)]
    for kind, value in pieces:
        current = stack[-1][1]
        if kind == "text":
            if value:
                current.append(_Node("text", value))
            continue
        word, _, rest = value.partition(" ")
        if value.startswith("/*"):
            continue
        if word in ("if", "with", "define"):
            node = _Node(word, rest.strip())
            current.append(node)
            stack.append((node, node.body))
        elif word == "else":
            owner = stack[-1][0]
            if owner is None or rest.strip():
                raise TemplateError(f"unsupported else: {value!r}")
            stack[-1] = (owner, owner.otherwise)
        elif word == "end":
            stack.pop()
        else:
            current.append(_Node("action", value))
    if len(stack) != 1:
        raise TemplateError("unbalanced template blocks")
    return root


def _tokens(expression: str) -> list[str]:
    return re.findall(r'"(?:[^"\\]|\\.)*"|\(|\)|\||:=|[^\s()|]+', expression)


@dataclass
class _Scope:
    root: dict[str, Any]
    dot: Any
    variables: dict[str, Any]
    templates: dict[str, list[_Node]]


def _truthy(value: Any) -> bool:
    return bool(value) if not isinstance(value, str) else value != ""


def _field(value: Any, path: str) -> Any:
    for part in (p for p in path.split(".") if p):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _semver_compare(constraint: str, version: str) -> bool:
    match = re.fullmatch(r"(>=|<=|>|<|=)?\s*v?(\d+)\.(\d+)\.(\d+)(?:-.*)?", constraint)
    found = re.match(r"v?(\d+)\.(\d+)\.(\d+)", str(version))
    if not match or not found:
        raise TemplateError(f"semverCompare {constraint!r} {version!r}")
    wanted = tuple(int(x) for x in match.group(2, 3, 4))
    have = tuple(int(x) for x in found.groups())
    return {">=": have >= wanted, "<=": have <= wanted, ">": have > wanted, "<": have < wanted,
            "=": have == wanted, None: have == wanted}[match.group(1)]


def _to_yaml(value: Any) -> str:
    return "" if value is None else yaml.safe_dump(value, default_flow_style=False, sort_keys=False).rstrip("\n")


def _indent(width: int, text: str) -> str:
    return "\n".join(" " * width + line if line else line for line in str(text).split("\n"))


def _trunc(width: int, text: str) -> str:
    return str(text)[:width]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "not": lambda value: not _truthy(value),
    "or": lambda *values: next((v for v in values if _truthy(v)), values[-1]),
    "and": lambda *values: next((v for v in values if not _truthy(v)), values[-1]),
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "ge": lambda a, b: a >= b,
    "int": lambda value: int(value or 0),
    "regexFind": lambda pattern, value: (re.search(pattern, str(value)) or [""])[0],
    "semverCompare": _semver_compare,
    "printf": lambda fmt, *args: re.sub(r"%[sdv]", "{}", fmt).format(*args),
    "list": lambda *items: list(items),
    "default": lambda fallback, value=None: value if _truthy(value) else fallback,
    "trunc": _trunc,
    "trimSuffix": lambda suffix, text: str(text)[: -len(suffix)] if suffix and str(text).endswith(suffix) else text,
    "contains": lambda needle, haystack: needle in str(haystack),
    "replace": lambda old, new, text: str(text).replace(old, new),
    "toYaml": _to_yaml,
    "toJson": lambda value: json.dumps(value, separators=(",", ":")),
    "nindent": lambda width, text: "\n" + _indent(width, text),
    "indent": _indent,
    "b64enc": lambda value: base64.b64encode(str(value).encode()).decode(),
    "quote": lambda value: json.dumps(str(value)),
    "genCA": lambda *_args: {"Cert": "<generated-ca>", "Key": "<generated-key>"},
    "genSignedCert": lambda *_args: {"Cert": "<generated-cert>", "Key": "<generated-key>"},
}


class _Evaluator:
    def __init__(self, scope: _Scope) -> None:
        self.scope = scope

    def pipeline(self, tokens: list[str]) -> Any:
        commands: list[list[str]] = [[]]
        depth = 0
        for token in tokens:
            depth += token == "("
            depth -= token == ")"
            if token == "|" and depth == 0:
                commands.append([])
            else:
                commands[-1].append(token)
        value: Any = _MISSING
        for command in commands:
            value = self.command(command, value)
        return value

    def command(self, tokens: list[str], piped: Any) -> Any:
        operands = self.operands(tokens)
        head = operands[0]
        if isinstance(head, _Function):
            arguments = [self.value(o) for o in operands[1:]]
            if piped is not _MISSING:
                arguments.append(piped)
            return head.call(self, arguments)
        if len(operands) != 1 or piped is not _MISSING:
            raise TemplateError(f"cannot apply {tokens!r}")
        return self.value(head)

    def operands(self, tokens: list[str]) -> list[Any]:
        found: list[Any] = []
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if token == "(":
                depth, end = 1, index + 1
                while depth:
                    depth += tokens[end] == "("
                    depth -= tokens[end] == ")"
                    end += 1
                found.append(_Deferred(tokens[index + 1:end - 1]))
                index = end
                continue
            found.append(self.atom(token))
            index += 1
        return found

    def atom(self, token: str) -> Any:
        if token.startswith('"'):
            return json.loads(token)
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        if token in ("true", "false"):
            return token == "true"
        if token == "nil":
            return None
        if token == ".":
            return _Value(self.scope.dot)
        if token.startswith("$"):
            name, _, rest = token.partition(".")
            if name not in self.scope.variables:
                raise TemplateError(f"unknown variable {name}")
            return _Value(_field(self.scope.variables[name], rest))
        if token.startswith("."):
            base = self.scope.root if token.split(".")[1] in self.scope.root else self.scope.dot
            return _Value(_field(base, token))
        if token in FUNCTIONS or token == "include":
            return _Function(token)
        raise TemplateError(f"unknown function or value {token!r}")

    def value(self, operand: Any) -> Any:
        if isinstance(operand, _Deferred):
            return self.pipeline(operand.tokens)
        if isinstance(operand, _Value):
            return operand.value
        if isinstance(operand, _Function):
            return operand.call(self, [])
        return operand


_MISSING = object()


@dataclass
class _Value:
    value: Any


@dataclass
class _Deferred:
    tokens: list[str]


@dataclass
class _Function:
    name: str

    def call(self, evaluator: _Evaluator, arguments: list[Any]) -> Any:
        if self.name == "include":
            name, dot = arguments
            nested = _Scope(evaluator.scope.root, dot, {}, evaluator.scope.templates)
            return _render(evaluator.scope.templates[name], nested)
        return FUNCTIONS[self.name](*arguments)


def _render(nodes: list[_Node], scope: _Scope) -> str:
    out: list[str] = []
    for node in nodes:
        if node.kind == "text":
            out.append(node.value)
        elif node.kind == "define":
            continue
        elif node.kind == "action":
            tokens = _tokens(node.value)
            if len(tokens) > 2 and tokens[1] == ":=":
                scope.variables[tokens[0]] = _Evaluator(scope).pipeline(tokens[2:])
                continue
            value = _Evaluator(scope).pipeline(tokens)
            out.append("" if value is None else str(value).lower() if isinstance(value, bool) else str(value))
        elif node.kind == "if":
            chosen = node.body if _truthy(_Evaluator(scope).pipeline(_tokens(node.value))) else node.otherwise
            out.append(_render(chosen, scope))
        elif node.kind == "with":
            value = _Evaluator(scope).pipeline(_tokens(node.value))
            if _truthy(value):
                out.append(_render(node.body, _Scope(scope.root, value, scope.variables, scope.templates)))
            else:
                out.append(_render(node.otherwise, scope))
    return "".join(out)


def _defines(nodes: list[_Node], into: dict[str, list[_Node]]) -> None:
    for node in nodes:
        if node.kind == "define":
            into[json.loads(node.value)] = node.body


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's values merge: ``override`` wins, maps merged key by key."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = merge(merged[key], value) if isinstance(value, Mapping) and isinstance(
            merged.get(key), dict) else value
    return merged


def template(chart: str, release: str, namespace: str, values: Mapping[str, Any],
             kube_version: str = "v1.33.1") -> list[dict[str, Any]]:
    """The objects of ``chart`` (a data directory, e.g. ``SeldonIO/seldon-core/v1.17.1/helm-charts/...``) as
    ``helm template <release> -n <namespace> --set ...`` renders them.

    Raises:
        TemplateError: The chart uses something this renderer does not know.
    """
    meta = data.load_yaml(data.text(f"{chart}/Chart.yaml"))
    defaults = data.load_yaml(data.text(f"{chart}/values.yaml")) or {}
    minor = re.match(r"v?\d+\.(\d+)", kube_version)
    root = {
        "Values": merge(defaults, values),
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm"},
        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta.get("appVersion")},
        "Capabilities": {"KubeVersion": {"GitVersion": kube_version, "Version": kube_version,
                                         "Minor": minor.group(1) if minor else ""}},
    }
    files = sorted(name for name in data.checksums() if name.startswith(f"{chart}/templates/"))
    templates: dict[str, list[_Node]] = {}
    parsed = {name: _parse(_lex(data.text(name))) for name in files}
    for nodes in parsed.values():
        _defines(nodes, templates)
    objects: list[dict[str, Any]] = []
    for name, nodes in parsed.items():
        if name.endswith(".tpl"):
            continue
        rendered = _render(nodes, _Scope(root, root, {}, templates))
        objects += [doc for doc in yaml.load_all(rendered, Loader=data.LOADER) if doc]
    return objects
