"""The shared options and arguments: bad values are refused before any request."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sluicegate.cli.main import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input="a\n")
    return result.exit_code, result.stdout, result.stderr


#: Every command that takes a name, with the name left empty (and --yes where it deletes).
EMPTY_NAMES = [
    (["topics", "create", ""], "topic name"),
    (["topics", "describe", ""], "topic name"),
    (["topics", "delete", "", "--yes"], "topic name"),
    (["produce", ""], "topic name"),
    (["consume", ""], "topic name"),
    (["clients", "create", ""], "client name"),
    (["clients", "update", ""], "client name"),
    (["clients", "show", ""], "client name"),
    (["clients", "delete", "", "--yes"], "client name"),
    (["keys", "create", ""], "client name"),
    (["keys", "list", ""], "client name"),
    (["keys", "revoke", "", "k_0123456789ab"], "client name"),
    (["keys", "revoke", "ops", ""], "key id"),
]


@pytest.mark.parametrize(("command", "noun"), EMPTY_NAMES)
def test_an_empty_name_is_refused_before_any_request(
    command: list[str], noun: str, unused_tcp_port: int
) -> None:
    # Nothing listens on the port: a request would say "no sluicegate server" instead.
    code, _, err = invoke(*command, "--url", f"http://127.0.0.1:{unused_tcp_port}")
    assert code == 2
    assert err == f"error: the {noun} must not be empty\n"


@pytest.mark.parametrize("name", [".", "..", "a/b", "../clients"])
@pytest.mark.parametrize(
    "command", [["topics", "describe"], ["keys", "list"], ["topics", "delete", "--yes"]]
)
def test_a_name_that_is_not_one_path_segment_is_refused(
    command: list[str], name: str, tmp_path: Path
) -> None:
    # The route leaked: "no route for GET /admin/v1/topics/a/b", or another route answered.
    code, _, err = invoke(*command[:2], name, *command[2:], "--data-dir", str(tmp_path))
    assert code == 2
    assert err.startswith("error: invalid ")
    assert f"{name!r}: a name holds no '/' and is not '.' or '..'\n" in err


@pytest.mark.parametrize(
    "command",
    [
        ["topics", "list"],
        ["topics", "create", "orders"],
        ["topics", "describe", "orders"],
        ["topics", "delete", "orders", "--yes"],
        ["produce", "orders"],
        ["consume", "orders"],
        ["clients", "list"],
        ["clients", "create", "ops"],
        ["keys", "create", "ops"],
    ],
)
def test_offline_commands_refuse_a_data_directory_that_does_not_exist(
    command: list[str], tmp_path: Path
) -> None:
    # A typo opened a new, empty store there: the gateway looked empty.
    missing = tmp_path / "typo"
    code, _, err = invoke(*command, "--data-dir", str(missing))
    assert code == 2
    assert err.startswith(f"error: data directory {missing} does not exist (")
    assert "\n" not in err.rstrip("\n")
    assert not missing.exists()


def test_offline_commands_refuse_a_file_as_data_directory(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    code, _, err = invoke("topics", "list", "--data-dir", str(file))
    assert code == 2
    assert err == f"error: data directory {file} is not a directory\n"


@pytest.mark.parametrize("command", [["serve"], ["topics", "list"], ["clients", "list"]])
def test_an_empty_data_directory_is_refused_by_every_command(
    command: list[str],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "" was the current directory: serve started, and offline commands read, a store there.
    monkeypatch.chdir(tmp_path)
    # Should serve not refuse it, a configuration it refuses ends it rather than serving.
    unusable = tmp_path_factory.mktemp("config") / "bad.toml"
    unusable.write_text("[server]\nport = 'eighty'\n")
    config = ["--config", str(unusable)] if command == ["serve"] else []
    code, _, err = invoke(*command, "--data-dir", "", *config)
    assert code == 2
    assert err == "error: --data-dir must not be empty\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["notaurl", "ftp://gw.example", "http://", "127.0.0.1:8080"])
def test_a_url_that_is_not_http_is_a_usage_error(url: str) -> None:
    code, _, err = invoke("topics", "list", "--url", url)
    assert code == 2
    assert err == f"error: --url must start with http:// or https:// (got {url!r})\n"
