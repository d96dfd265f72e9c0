"""Every command the README and docs/ tell a user to type exists, and every link in them leads somewhere.

Read from the documents as a user reads them, in code blocks and inline code:

- ``kfops ...``: each subcommand on the path, and each ``--option``, is listed by that command's own ``--help``;
- ``make TARGET``: the target is listed by ``make help``;
- ``python -m MODULE``: the module (a package's ``__main__``) is importable;
- ``[text](path#anchor)``: the file exists in the repository, and an anchor into Markdown names one of its headings
  by GitHub's slug rules; so does a bare ``file.md#anchor`` in the text, and a ``docs/*.md`` the code points at.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^ {0,3}(```|~~~)\s*([\w+-]*)")
#: Code blocks read as shell lines: these languages, and a block that names none (a picture is marked `text`).
SHELL = {"", "bash", "sh", "shell", "console", "zsh"}
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_BARE_ANCHOR = re.compile(r"(?<![\w/.(-])((?:[\w.-]+/)*[\w.-]+\.md)#([\w-]+)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
# A shell line splits into simple commands at these (a command substitution's `$(` and `)` included).
_SEPARATORS = re.compile(r"\$\(|&&|\|\||[;|&()`]")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_OPTION = re.compile(r"^--?[A-Za-z]")
_PYTHON = re.compile(r"^python(\d+(\.\d+)*)?$")


@dataclass
class Doc:
    """A Markdown document split as GitHub renders it: shell code blocks, and prose with its inline code."""

    path: Path
    text: str
    code: list[tuple[int, str]] = field(default_factory=list)
    prose: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        fence, language = "", ""
        for number, line in enumerate(self.text.splitlines(), 1):
            opened = _FENCE.match(line)
            if opened and (not fence or opened.group(1) == fence):
                fence, language = ("", "") if fence else (opened.group(1), opened.group(2).lower())
            elif fence:
                if language in SHELL:
                    self.code.append((number, line))
            else:
                self.prose.append((number, line))

    def prose_text(self) -> Iterator[tuple[int, str]]:
        """Paragraphs of prose (an inline code span may wrap a line), each with its first line's number."""
        paragraph: list[tuple[int, str]] = []
        for number, line in [*self.prose, (0, "")]:
            if line.strip():
                paragraph.append((number, line))
            elif paragraph:
                yield paragraph[0][0], "\n".join(text for _, text in paragraph)
                paragraph = []

    def inline_code(self) -> Iterator[tuple[int, str]]:
        for number, paragraph in self.prose_text():
            for span in _INLINE_CODE.finditer(paragraph):
                yield number + paragraph.count("\n", 0, span.start()), " ".join(span.group(2).split())

    def shell_lines(self) -> Iterator[tuple[int, str]]:
        """Each line of the code blocks, continuation lines joined, comments dropped, and each inline code span."""
        pending, start = "", 0
        for number, line in self.code:
            if not pending:
                start = number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            yield start, _without_comment(pending + line)
            pending = ""
        yield from self.inline_code()

    def headings(self) -> set[str]:
        """The anchors GitHub gives this document's headings (a repeated one gets -1, -2...)."""
        anchors: set[str] = set()
        seen: dict[str, int] = {}
        for _, line in self.prose:
            heading = _HEADING.match(line)
            if heading:
                anchor = slug(heading.group(1))
                anchors.add(f"{anchor}-{seen[anchor]}" if anchor in seen else anchor)
                seen[anchor] = seen.get(anchor, 0) + 1
        return anchors


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text, lower case, punctuation but `-` and `_` dropped, spaces `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _without_comment(line: str) -> str:
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def simple_commands(line: str) -> Iterator[list[str]]:
    """The words of each simple command on a shell line, environment assignments in front of it dropped."""
    for part in _SEPARATORS.split(line):
        part = part.strip().strip("\"'").strip()
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        while words and _ASSIGNMENT.match(words[0]):
            words = words[1:]
        if words:
            yield words


# The command line's own help.

@dataclass(frozen=True)
class Help:
    commands: frozenset[str]
    options: frozenset[str]


@functools.cache
def cli_help(path: tuple[str, ...]) -> Help:
    """What ``kfops <path> --help`` lists: its subcommands and its options."""
    from kfops.cli import main

    result = CliRunner().invoke(main, [*path, "--help"], prog_name="kfops", terminal_width=120)
    assert result.exit_code == 0, f"kfops {' '.join(path)} --help: {result.output}"
    commands, options, section = set(), set(), ""
    for line in result.output.splitlines():
        header = re.match(r"^([A-Z][\w ]*):$", line)
        if header:
            section = header.group(1)
        elif section == "Commands" and re.match(r"^  \S", line):
            commands.add(line.split()[0])
        elif section == "Options" and re.match(r"^  -", line):
            names = re.split(r"\s{2,}", line.strip())[0]
            options |= set(re.findall(r"(?<![\w-])--?[A-Za-z0-9][\w-]*", names))
    return Help(frozenset(commands), frozenset(options))


def kfops_problems(args: list[str]) -> list[str]:
    path: list[str] = []
    shown = cli_help(())
    for word in args:
        if not shown.commands or _OPTION.match(word):
            break
        if word not in shown.commands:
            parent = " ".join(["kfops", *path])
            return [f"`{parent} {word}`: not a command `{parent} --help` lists ({sorted(shown.commands)})"]
        path.append(word)
        shown = cli_help(tuple(path))
    return [f"`kfops {' '.join(path)} {word}`: not an option its --help lists ({sorted(shown.options)})"
            for word in args[len(path):] if _OPTION.match(word) and word.split("=", 1)[0] not in shown.options]


@functools.cache
def make_targets() -> frozenset[str]:
    """The targets ``make help`` lists."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shown = subprocess.run(["make", "--no-print-directory", "-s", "-C", str(ROOT), "help"], capture_output=True,
                           text=True, check=True, timeout=60).stdout
    return frozenset(re.findall(r"^\s*make\s+(\S+)", shown, re.MULTILINE))


def module_problems(name: str) -> list[str]:
    try:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            spec = importlib.util.find_spec(f"{name}.__main__")
    except ImportError:
        spec = None
    return [] if spec else [f"`python -m {name}`: no such module (or package with a __main__)"]


def command_problems(doc: Doc) -> list[str]:
    problems = []
    for number, line in doc.shell_lines():
        for words in simple_commands(line):
            program, args = PurePosixPath(words[0]).name, words[1:]
            if program == "kfops":
                found = kfops_problems(args)
            elif program == "make":
                found = [f"`make {target}`: not a target `make help` lists ({sorted(make_targets())})"
                         for target in args if not target.startswith("-") and "=" not in target
                         and target not in make_targets()]
            elif _PYTHON.match(program) and args[:1] == ["-m"] and len(args) > 1:
                found = module_problems(args[1])
            else:
                found = []
            problems += [f"{doc.path.relative_to(ROOT)}:{number}: {problem}" for problem in found]
    return problems


# Links.

@functools.cache
def anchors(path: Path) -> set[str]:
    return Doc(path, path.read_text()).headings()


def target_problems(base: Path, target: str) -> str | None:
    """Why ``target`` (relative to ``base``, a folder; with or without ``#anchor``) leads nowhere, if it does."""
    file, _, anchor = target.partition("#")
    path = (base / file).resolve()
    if not path.is_relative_to(ROOT) or not path.exists():
        return f"{target}: no such file in the repository"
    if anchor and path.suffix == ".md" and anchor not in anchors(path):
        return f"{target}: {path.relative_to(ROOT)} has no heading with anchor #{anchor}"
    return None


def link_problems(doc: Doc) -> list[str]:
    problems = []
    for number, paragraph in doc.prose_text():
        text = _INLINE_CODE.sub(lambda span: "`" * len(span.group(0)), paragraph)
        for link in [*_LINK.finditer(text), *_REFERENCE.finditer(text)]:
            target = link.group(1)
            if _SCHEME.match(target):
                continue
            line = number + text.count("\n", 0, link.start())
            if target.startswith("#"):
                problem = None if target[1:] in doc.headings() else f"{target}: no heading with this anchor here"
            else:
                problem = target_problems(doc.path.parent, target)
            if problem:
                problems.append(f"{doc.path.relative_to(ROOT)}:{line}: {problem}")
        # A file.md#anchor written out, in the text or in inline code: relative to the document or to the root.
        for mention in _BARE_ANCHOR.finditer(paragraph):
            found = [target_problems(base, mention.group(0)) for base in (doc.path.parent, ROOT)]
            if all(found):
                problems.append(f"{doc.path.relative_to(ROOT)}:{number + paragraph.count(chr(10), 0, mention.start())}"
                                f": {found[0]}")
    return problems


def problems(path: Path, text: str | None = None) -> list[str]:
    doc = Doc(path, path.read_text() if text is None else text)
    return command_problems(doc) + link_problems(doc)


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_command_and_link_in_the_doc_exists(path: Path) -> None:
    found = problems(path)
    assert not found, "\n".join(found)


def test_the_docs_show_every_command_the_cli_has() -> None:
    """Each command the CLI has is shown to users at least once (and the reading above found the commands at all)."""
    shown: set[tuple[str, ...]] = set()
    for path in DOCS:
        for _, line in Doc(path, path.read_text()).shell_lines():
            for words in simple_commands(line):
                if PurePosixPath(words[0]).name == "kfops":
                    shown |= {tuple(words[1:end]) for end in range(2, len(words) + 1)}

    def leaves(path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        commands = cli_help(path).commands
        yield from (leaf for name in sorted(commands) for leaf in leaves((*path, name))) if commands else [path]

    assert [leaf for leaf in leaves(()) if leaf not in shown] == []


_CODE_POINTER = re.compile(r"(?<![\w/.-])(docs/[\w.-]+\.md(?:#[\w-]+)?)")


def test_every_pointer_from_the_code_to_a_doc_resolves() -> None:
    """Comments, docstrings and messages that send a reader to ``docs/<file>.md`` name a file (and heading) there."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=False).stdout
    if not files:
        pytest.skip("not a git checkout")
    broken = []
    for name in files.splitlines():
        path = ROOT / name
        if path == Path(__file__).resolve():  # its examples of what does not exist
            continue
        if path.suffix in {".py", ".toml", ".yaml", ".yml", ".cfg"} or path.name in {"Makefile", "Dockerfile", "run"}:
            for pointer in _CODE_POINTER.findall(path.read_text(errors="replace") if path.is_file() else ""):
                problem = target_problems(ROOT, pointer)
                if problem:
                    broken.append(f"{name}: {problem}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize(("where", "text", "expected"), [
    ("README.md", "```bash\n.venv/bin/kfops local restart   # start again\n```\n", "kfops local restart"),
    ("README.md", "Run `kfops doctor --frobnicate` first.\n", "kfops doctor --frobnicate"),
    ("README.md", "```bash\neval \"$(.venv/bin/kfops local env --shell fish)\"\n```\n", "--shell"),
    ("README.md", "```bash\nX=1 .venv/bin/kfops pipeline run --local \\\n  --trails 20\n```\n", "--trails"),
    ("README.md", "```bash\nmake deploy\n```\n", "make deploy"),
    ("README.md", "Then `python -m no_such_module --help`.\n", "no_such_module"),
    ("README.md", "See [the manual](docs/no-such-file.md).\n", "docs/no-such-file.md: no such file"),
    ("docs/cluster-review.md", "[limits](cluster.md#no-such-heading)\n", "has no heading with anchor"),
    ("docs/local.md", "[up](#no-such-heading)\n", "no heading with this anchor"),
    ("docs/local.md", "as `cluster.md#known-limit` says\n", "has no heading with anchor #known-limit"),
], ids=["command", "option", "option-in-substitution", "option-on-continuation", "make-target", "module", "link",
        "anchor", "anchor-in-file", "bare-anchor"])
def test_what_does_not_exist_is_caught(where: str, text: str, expected: str) -> None:
    found = problems(ROOT / where, text)
    assert len(found) == 1, found
    assert expected in found[0]


@pytest.mark.parametrize(("heading", "anchor"), [
    ("Known limits (not fixed)", "known-limits-not-fixed"),
    ("The local platform: `kfops local`", "the-local-platform-kfops-local"),
    ("On a local kind cluster (everything from scratch)", "on-a-local-kind-cluster-everything-from-scratch"),
    ("The workflow: `kfops pipeline`", "the-workflow-kfops-pipeline"),
    ("See [here](x.md) now", "see-here-now"),
])
def test_anchors_follow_githubs_rules(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
