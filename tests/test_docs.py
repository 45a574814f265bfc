"""The documentation stays true: the README is a short front door, docs/cli.md is generated
from the argument parser and names every command and option, docs/settings.md names every
setting with its default, and every link and repository path the docs name exists."""

from __future__ import annotations

import argparse
import importlib.util
import re
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
from newsflow.cli import build_parser
from newsflow.config import Settings, env_var

from tests.helpers import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
CLI_MD = DOCS / "cli.md"
SETTINGS_MD = DOCS / "settings.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
REGENERATE = "run `python scripts/cli_reference.py` and commit docs/cli.md"


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "scripts" / "cli_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the CLI reference ---------------------------------------------------------------------


def parser_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("newsflow",)):
    """(path, parser) for the parser and every subcommand (aliases included), walked here
    independently of the generator."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parser_commands(sub, (*path, name))


def reference_sections(text: str) -> dict[str, str]:
    """Each command's section of docs/cli.md, keyed by its heading (`newsflow feeds add`)."""
    parts = re.split(r"^#+ `(newsflow[^`]*)`[ \t]*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def undocumented(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """Commands without a section in ``text``, and arguments missing from their section."""
    sections = reference_sections(text)
    missing = []
    for path, sub in parser_commands(parser):
        title = " ".join(path)
        body = sections.get(title)
        if body is None:
            missing.append(title)
            continue
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            for name in action.option_strings or [action.metavar or action.dest]:
                if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", body):
                    missing.append(f"{title} {name}")
    return missing


def test_cli_reference_is_current():
    expected = load_generator().generate()
    current = CLI_MD.read_text(encoding="utf-8") if CLI_MD.exists() else ""
    assert current == expected, f"docs/cli.md is stale: {REGENERATE}"


def test_every_command_and_option_is_in_the_cli_reference():
    missing = undocumented(build_parser(), CLI_MD.read_text(encoding="utf-8"))
    assert not missing, f"undocumented in docs/cli.md: {missing}; {REGENERATE}"


def test_an_undocumented_option_or_command_is_caught():
    text = CLI_MD.read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["report"].add_argument("--as-of-yesterday", action="store_true")
    feeds = sub.choices["feeds"]
    inner = next(a for a in feeds._actions if isinstance(a, argparse._SubParsersAction))
    inner.choices["add"].add_argument("--priority", type=int)
    sub.add_parser("frobnicate", help="not a real command")
    assert undocumented(parser, text) == [
        "newsflow report --as-of-yesterday",
        "newsflow feeds add --priority",
        "newsflow frobnicate",
    ]
    # and the generated text no longer matches the committed file either
    assert load_generator().render(parser) != text


def test_see_also_names_real_commands():
    names = {" ".join(path[1:]) for path, _ in parser_commands(build_parser())}
    assert set(load_generator().SEE_ALSO) <= names


# --- the README ----------------------------------------------------------------------------


def test_readme_is_a_front_door():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move reference material to docs/"


# --- settings ------------------------------------------------------------------------------


def documented_settings() -> dict[str, str]:
    """variable -> its default cell, from the tables of docs/settings.md."""
    rows = re.findall(
        r"^\| `(NEWSFLOW_[A-Z0-9_]+)` \| (.*?) \| .* \|$",
        SETTINGS_MD.read_text(encoding="utf-8"),
        flags=re.M,
    )
    assert len(rows) == len(dict(rows)), "a variable is documented twice"
    return dict(rows)


def read_by_code() -> set[str]:
    """Every NEWSFLOW_* variable named by the package, the DAGs, docker and the scripts."""
    files = [
        *(ROOT / "pipeline").rglob("*.py"),
        *(ROOT / "dags").glob("*.py"),
        *(ROOT / "scripts").glob("*"),
        *(ROOT / "docker").glob("*"),
        ROOT / "docker-compose.yml",
        ROOT / ".env.example",
    ]
    names = set()
    for path in files:
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            names |= set(re.findall(r"\bNEWSFLOW_[A-Z0-9_]*[A-Z0-9]\b", text))
    return names


def first_code(cell: str) -> str | None:
    found = re.match(r"`([^`]*)`", cell.strip())
    return found.group(1) if found else None


@pytest.mark.parametrize("field", fields(Settings), ids=lambda f: env_var(f.name))
def test_every_setting_is_documented_with_its_default(field):
    documented = documented_settings()
    var = env_var(field.name)
    assert var in documented, f"{var} is missing from docs/settings.md"
    cell, default = documented[var], field.default
    assert default is not MISSING
    if default is None or default == "":
        assert cell.startswith("—"), f"{var}: no default, documented as {cell!r}"
        return
    shown = first_code(cell)
    assert shown is not None, f"{var}: the default cell should start with `value`: {cell!r}"
    if isinstance(default, bool):
        assert shown == ("1" if default else "0"), f"{var}: default {default}, documented {shown}"
    elif isinstance(default, int | float):
        assert float(shown) == float(default), f"{var}: default {default}, documented {shown}"
    else:
        assert shown == str(default), f"{var}: default {default}, documented {shown}"


def test_every_variable_the_code_reads_is_documented():
    missing = read_by_code() - set(documented_settings())
    assert not missing, f"missing from docs/settings.md: {sorted(missing)}"


def test_no_documented_variable_is_unknown():
    known = {env_var(f.name) for f in fields(Settings)} | read_by_code()
    unknown = set(documented_settings()) - known
    assert not unknown, f"docs/settings.md documents variables nothing reads: {sorted(unknown)}"


def test_dag_and_compose_defaults_are_documented():
    documented = documented_settings()
    defaults = {}
    for path in (ROOT / "dags").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        defaults |= dict(re.findall(r'env_number\("(NEWSFLOW_\w+)", ([\d.]+)\)', text))
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    defaults |= dict(re.findall(r"\$\{(NEWSFLOW_\w+):-([^}]+)\}", compose))
    assert defaults
    for var, default in defaults.items():
        assert first_code(documented[var]) == default, f"{var}: the code's default is {default}"


# --- links and paths -----------------------------------------------------------------------


def prose(text: str) -> str:
    """The text without fenced code blocks."""
    return re.sub(r"^```.*?^```[ \t]*$", "", text, flags=re.M | re.S)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#+ (.+?)[ \t]*$", prose(path.read_text(encoding="utf-8")), re.M):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(path: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", prose(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


REPO_PATH = re.compile(r"^(?:pipeline|sql|benchmarks|tests|scripts|dags|docker|examples|docs)/")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_paths_named_exist(page):
    missing = []
    for code in re.findall(r"`([^`\s]+)`", prose(page.read_text(encoding="utf-8"))):
        if not REPO_PATH.match(code) or "<" in code:
            continue
        if not (any(ROOT.glob(code)) if "*" in code else (ROOT / code).exists()):
            missing.append(code)
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"
