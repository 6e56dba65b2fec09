"""The docs that are generated from code, and the README's commands, stay true to the code."""

from seqgan_ray.config import reference_markdown
from tests.helpers import ROOT


def test_configuration_reference_is_generated_from_the_code():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert doc.strip() == reference_markdown().strip(), \
        "docs/configuration.md is stale: python -m seqgan_ray.config > docs/configuration.md"


def test_ci_runs_the_test_command_the_readme_gives():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = 'python -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && python -m pytest'
    assert command in readme and command in ci
