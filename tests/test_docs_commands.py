"""Every `imfed ...` command written in README.md and docs/*.md parses: its subcommands exist,
every option it shows is one of that command's, and `<command> --help` runs.  A documented
command that the CLI no longer takes fails here."""

from __future__ import annotations

import glob
import os
import re

import pytest

from conftest import REPO
from imfed.cli import parser

_INLINE = re.compile(r"`(imfed [a-z][^`]*)`")
_BLOCK = re.compile(r"^\s{4,}(?:\$ )?(?:\.venv/bin/)?(imfed [a-z].*)$")


def documented() -> list[tuple[str, str]]:
    """(where, command) of every imfed command in the docs."""
    out = []
    for path in [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs",
                                                                               "*.md"))):
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        name = os.path.relpath(path, REPO)
        i = 0
        while i < len(lines):
            line = lines[i]
            m = _BLOCK.match(line)
            if m:
                command = m.group(1)
                while command.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    command = command[:-1] + " " + lines[i].strip()
                for part in command.split("#")[0].split("  /  "):
                    out.append(("%s:%d" % (name, i + 1), part.strip()))
            else:
                for m in _INLINE.finditer(line):
                    if not m.group(1).endswith("..."):
                        out.append(("%s:%d" % (name, i + 1), m.group(1)))
            i += 1
    return out


def words(command: str) -> list[str]:
    """The command as arguments: placeholders filled, optional brackets opened, the first of
    each set of alternatives taken."""
    command = re.sub(r"<[^>]*>", "x", command)
    command = re.sub(r"\{([^},]+)[^}]*\}", r"\1", command)
    command = command.replace("[", " ").replace("]", " ").replace("...", " ")
    out = []
    for token in command.split()[1:]:
        if token == "|":
            break  # "[--password P | --password-stdin]": the first alternative is enough
        out.append(token.split("|")[0])
    return out


def check(args: list[str]) -> None:
    p = parser()
    verbs, current = [], p
    for token in args:
        subs = [a for a in current._actions if a.__class__.__name__ == "_SubParsersAction"]
        if token.startswith("-") or not subs:
            continue
        if token not in subs[0].choices:
            raise AssertionError("no command %r after %s" % (token, " ".join(["imfed"] + verbs)))
        verbs.append(token)
        current = subs[0].choices[token]
    for token in args:
        if token.startswith("--"):
            option = token.split("=")[0]
            assert option in current._option_string_actions, \
                "imfed %s has no option %s" % (" ".join(verbs), option)
    with pytest.raises(SystemExit) as done:
        p.parse_args(verbs + ["--help"])
    assert done.value.code == 0


COMMANDS = documented()


def test_the_docs_show_commands():
    assert len(COMMANDS) > 30
    shown = {" ".join(words(c)[:2]) for _, c in COMMANDS}
    assert {"node join", "user add", "acl mode", "admin approve", "backup --to"} <= shown


@pytest.mark.parametrize("where, command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where, command, capsys):
    check(words(command))


def test_a_wrong_command_or_option_fails():
    with pytest.raises(AssertionError):
        check(words("imfed user ad PHONE --config FILE"))
    with pytest.raises(AssertionError):
        check(words("imfed user add PHONE --nme NAME --config FILE"))


def test_ci_runs_the_readme_test_command_as_written():
    """Issue #30, 9: the README's one test command is what a newcomer types on a fresh machine;
    .ci/run runs that very line (so it is what CI proves), and the setup it starts with exists."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme[readme.index("Run the tests"):]
    command = next(line.strip() for line in section.splitlines() if line.startswith("    "))
    assert command.startswith("tests/setup-machine && ") and "-m pytest" in command, command
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        assert command in [line.strip() for line in f], command
    assert os.access(os.path.join(REPO, "tests", "setup-machine"), os.X_OK)
