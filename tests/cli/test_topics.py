"""The CLI on a data directory (offline) and against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from typer.testing import CliRunner

from sluicegate.app import build_app
from sluicegate.cli.main import app
from sluicegate.cli.target import AdminClient
from sluicegate.core.gateway import Gateway
from sluicegate.testing.process import serve_in_subprocess

runner = CliRunner()


def invoke(*args: str, input: str | bytes | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_offline_topic_lifecycle(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    code, out, _ = invoke("topics", "create", "orders", "--partitions", "3", *data)
    assert code == 0, out
    assert "created topic orders" in out
    code, out, _ = invoke("topics", "list", *data)
    assert code == 0
    assert "orders" in out
    code, out, _ = invoke("topics", "describe", "orders", *data)
    assert code == 0
    assert "partitions: 3" in out
    assert "offsets" in out  # high - low: on Kafka, transaction markers count too
    code, out, err = invoke("topics", "delete", "orders", *data)
    assert code == 2
    assert "refusing to delete without --yes" in err
    code, out, _ = invoke("topics", "delete", "orders", "--yes", *data)
    assert code == 0
    code, _, err = invoke("topics", "describe", "orders", *data)
    assert code == 1
    assert "does not exist" in err
    assert "Traceback" not in err


def test_offline_produce_and_consume(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"k{i}:value {i}\n" for i in range(1200)))
    code, _, err = invoke("produce", "events", "--file", str(lines), "--key-separator", ":", *data)
    assert code == 0, err
    assert "produced 1200 record(s)" in err
    code, _, err = invoke("produce", "events", *data, input="from stdin\n")
    assert code == 0, err
    code, out, _ = invoke("consume", "events", "--from-beginning", "--keys", *data)
    assert code == 0
    printed = out.splitlines()
    assert printed[0] == "k0\tvalue 0"
    assert printed[1199] == "k1199\tvalue 1199"
    assert printed[1200] == "\tfrom stdin"
    code, out, _ = invoke("consume", "events", "--from-beginning", "--max", "5", *data)
    assert out.splitlines() == [f"value {i}" for i in range(5)]
    code, out, _ = invoke("consume", "events", *data)
    assert (code, out) == (0, "")


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    code, _, err = invoke("topics", "create", "bad name", "--data-dir", str(tmp_path))
    assert code == 1
    assert "invalid topic name 'bad name'" in err
    code, _, err = invoke("topics", "list", "--url", "http://127.0.0.1:9")
    assert code == 1
    assert "no sluicegate server at http://127.0.0.1:9" in err
    assert "Traceback" not in err


def test_against_a_running_server(tmp_path: Path) -> None:
    with serve_in_subprocess(tmp_path / "data") as server:
        url = ["--url", server.url]
        assert invoke("topics", "create", "live", *url)[0] == 0
        code, _, err = invoke("produce", "live", *url, input="a\nb\nc\n")
        assert code == 0, err
        code, out, _ = invoke("consume", "live", "--from-beginning", *url)
        assert out.splitlines() == ["a", "b", "c"]
        # The server holds the data directory: offline access is refused, clearly.
        code, _, err = invoke("topics", "list", "--data-dir", str(tmp_path / "data"))
        assert code == 1
        assert "another sluicegate server" in err


def test_bad_configuration_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nport = 'eighty'\n")
    code, _, err = invoke("serve", "--config", str(config))
    assert code == 2
    assert "server.port" in err


def test_follow_prints_json_lines_along_one_cursor(tmp_path: Path) -> None:
    with serve_in_subprocess(tmp_path / "data") as server:
        url = ["--url", server.url]
        assert invoke("topics", "create", "tail", "--partitions", "3", *url)[0] == 0
        code, _, err = invoke("produce", "tail", *url, input="a\nb\nc\n")
        assert code == 0, err
        code, out, err = invoke(
            "consume", "tail", "--from-beginning", "--follow", "--max", "3", *url
        )
        assert code == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert sorted(line["payload"] for line in lines) == ["a", "b", "c"]
        assert all(set(line) == {"message_id", "payload", "time"} for line in lines)
        # Resume after the first: the other two, then stop (no --follow).
        code, out, _ = invoke("consume", "tail", "--from", lines[0]["message_id"], *url)
        assert [json.loads(line)["message_id"] for line in out.splitlines()] == [
            line["message_id"] for line in lines[1:]
        ]
        code, out, _ = invoke("consume", "tail", "--since", "2999-01-01T00:00:00Z", *url)
        assert (code, out) == (0, "")
        code, _, err = invoke("consume", "tail", "--from", "nonsense!", *url)
        assert code == 1
        assert "invalid message id" in err
        code, _, err = invoke("consume", "tail", "--follow", "--keys", *url)
        assert code == 2


def test_follow_offline_reads_the_data_directory(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert invoke("produce", "events", *data, input='{"n": 1}\nplain\n')[0] == 0
    code, out, err = invoke(
        "consume", "events", "--from-beginning", "--follow", "--max", "2", *data
    )
    assert code == 0, err
    assert [json.loads(line)["payload"] for line in out.splitlines()] == [{"n": 1}, "plain"]


async def test_lists_are_walked_to_the_last_page(gateway: Gateway) -> None:
    transport = httpx.ASGITransport(app=build_app(gateway))
    admin = AdminClient("http://sluicegate.test", None, transport=transport)
    names = [f"t{i}" for i in range(5)]
    for name in names:
        await admin.create_topic({"name": name})
    sent: list[httpx.Request] = []

    async def remember(request: httpx.Request) -> None:
        sent.append(request)

    admin._client.event_hooks["request"].append(remember)
    try:
        listed = await admin.list_all("/topics", limit=2)
    finally:
        await admin.aclose()
    assert [topic["name"] for topic in listed] == names
    assert [request.url.params.get("limit") for request in sent] == ["2", "2", "2"]


def test_values_and_messages_are_printed_as_they_are(tmp_path: Path) -> None:
    # Escape sequences in a value are data (click strips them when not told to keep
    # them); brackets in the server's words are no markup (Rich read them as tags).
    data = ["--data-dir", str(tmp_path)]
    code, _, err = invoke("produce", "raw", *data, input="\x1b[31mred\x1b[0m [bold]x[/]\n")
    assert code == 0, err
    code, out, _ = invoke("consume", "raw", "--from-beginning", *data)
    assert out == "\x1b[31mred\x1b[0m [bold]x[/]\n"
    code, _, err = invoke("topics", "create", "[/x]", *data)
    assert code == 1
    assert "expected 1-249 characters of [a-zA-Z0-9._-]" in err
    assert "Traceback" not in err


def test_a_file_that_is_not_utf8_is_refused_by_its_line_and_nothing_is_produced(
    tmp_path: Path,
) -> None:
    data = ["--data-dir", str(tmp_path)]
    lines = tmp_path / "lines.txt"
    lines.write_bytes(b"ok\n\xff\xfe\nafter\n")
    code, _, err = invoke("produce", "orders", "--file", str(lines), *data)
    assert code == 2
    assert err == f"error: line 2 of {lines} is not UTF-8\n"
    # The file is checked while it is counted, before its first record is sent.
    code, out, _ = invoke("topics", "list", *data)
    assert "orders" not in out


def test_stdin_that_is_not_utf8_is_refused_by_its_line(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    code, _, err = invoke("produce", "orders", *data, input=b"ok\n\xff\xfe\n")
    assert code == 2
    assert err == "error: line 2 of stdin is not UTF-8\n"
    # Read as it comes, stdin may have produced batches before the bad line: they are counted.
    code, _, err = invoke("produce", "orders", "--batch", "1", *data, input=b"a\nb\n\xc3(\n")
    assert code == 2
    assert (
        err
        == "error: line 3 of stdin is not UTF-8; 2 record(s) before it were produced to orders\n"
    )
    code, out, _ = invoke("consume", "orders", "--from-beginning", *data)
    assert out == "a\nb\n"


def test_stdin_of_a_real_process_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    # A real stdin decodes with surrogateescape (CliRunner's strictly): the bad bytes
    # reached the JSON encoder as surrogates, "surrogates not allowed".
    command = [sys.executable, "-m", "sluicegate.cli.main", "produce", "orders"]
    result = subprocess.run(
        [*command, "--data-dir", str(tmp_path)],
        input=b"ok\n\xff\xfe\n",
        capture_output=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 2
    assert result.stderr.decode() == "error: line 2 of stdin is not UTF-8\n"


def test_an_empty_key_separator_is_a_usage_error(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    code, _, err = invoke("produce", "orders", "--key-separator", "", *data, input="a:b\n")
    assert code == 2
    assert err == "error: --key-separator must not be empty\n"


def test_offline_errors_show_no_http_status(tmp_path: Path) -> None:
    code, _, err = invoke("topics", "describe", "missing", "--data-dir", str(tmp_path))
    assert code == 1
    assert err == "error: topic 'missing' does not exist\n"
