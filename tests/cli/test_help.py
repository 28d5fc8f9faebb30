"""Help texts: a docstring's paragraphs reflow to the terminal's width."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from sluicegate.cli.main import app


@pytest.mark.parametrize(
    ("command", "sentence"),
    [
        (
            ["consume"],
            "the topic's messages along one cursor over all its partitions (the topics v1 "
            "consume API), one JSON line each",
        ),
        (["clients", "update"], "(omitted lists become empty, an omitted --ce-max-deliveries 0)"),
        (["consume"], "Print each key, a tab, then its value."),
    ],
)
def test_help_paragraphs_are_not_cut_where_the_docstring_breaks(
    command: list[str], sentence: str
) -> None:
    # Wide enough for each sentence on one line: only a kept line break would cut it.
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    assert sentence in result.output, result.output
