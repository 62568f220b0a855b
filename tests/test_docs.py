"""Keep the docs honest: the public API, the CLI and the config are what README.md says."""

import re

import typer.main

import memlane
from memlane.cli import app
from memlane.config import MemoryConfig

from _support import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_all_lists_exactly_the_public_names():
    public = {name for name in vars(memlane) if not name.startswith("_")} - {
        "config", "errors", "memory", "records", "embed", "ingest", "store", "retrieve", "bench", "cli", "llm", "tune", "nodes", "filters", "transfer", "client", "server",
        "documents"}
    assert set(memlane.__all__) - {"__version__"} == public


def _commands(group, prefix="memlane"):
    click_group = typer.main.get_command(group)
    for name, command in click_group.commands.items():
        if hasattr(command, "commands"):
            for sub in command.commands:
                yield f"{prefix} {name} {sub}", command.commands[sub]
        else:
            yield f"{prefix} {name}", command


def test_every_cli_command_has_help_and_is_in_the_readme():
    for name, command in _commands(app):
        assert command.help, f"{name} has no help"
        assert f"`{name}" in README, f"{name} is not documented in README.md"


def test_every_config_field_is_in_the_readme():
    for section, model in MemoryConfig.model_fields.items():
        for field, info in model.annotation.model_fields.items():
            assert f"`{section}.{field}`" in README, f"{section}.{field} is not documented"
            assert info.description, f"{section}.{field} has no description"


def test_readme_opens_with_install_and_demo_then_tests():
    commands = re.findall(r"^(?!#)(\S.*)$", README.split("```bash", 1)[1].split("```", 1)[0], re.M)
    assert "memlane demo" in commands[0] and "torch==2.13.0" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert ".venv/bin/python -m pytest" in ci
