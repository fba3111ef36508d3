"""Structured logging: context on every line, formats, levels, masking, the file, rotation."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pytest
from conftest import Launcher, bearer
from opentelemetry.sdk.trace import TracerProvider

from hyperspot.platform.config import LoggingSettings
from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.logs import (
    JsonFormatter,
    TextFormatter,
    TraceLogBuffer,
    configure_logging,
    mask_secrets,
    module_var,
    request_id_var,
    stop_logging,
    tenant_var,
    trace_logs,
)

STAMPED = re.compile(r"h\.log\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}(-\d+)?")
DAY = 86400


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Each test configures the process's logging; put back what pytest had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    uvicorn = {
        name: (lg.handlers[:], lg.propagate, lg.disabled)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        for lg in [logging.getLogger(name)]
    }
    yield
    configure_logging(LoggingSettings(console=False))  # resets the per-module levels
    stop_logging()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (saved, propagate, disabled) in uvicorn.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.propagate, logger.disabled = saved, propagate, disabled


def configure(**settings: Any) -> None:
    configure_logging(LoggingSettings.model_validate({"console": False, **settings}))


@contextmanager
def bound(var: ContextVar[str], value: str) -> Iterator[None]:
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_json_lines_carry_request_trace_tenant_and_module(tmp_path: Path) -> None:
    path = tmp_path / "h.log"
    configure(file={"path": str(path)})
    tracer = TracerProvider().get_tracer("test")  # local provider: the global one is untouched
    logger = logging.getLogger("hyperspot.modules.notes.service")
    with (
        bound(request_id_var, "req-1"),
        bound(tenant_var, "acme"),
        tracer.start_as_current_span("work") as span,
    ):
        logger.info("created %s", "n1", extra={"note_id": "n1", "size": 3})
        try:
            raise ValueError("bad input")
        except ValueError:
            logger.exception("failed")
    with bound(module_var, "hello"):
        logging.getLogger("hyperspot.platform.x").warning("outside")
    stop_logging()

    created, failed, outside = json_lines(path)
    context = span.get_span_context()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", created["ts"])
    assert created == {
        "ts": created["ts"],
        "level": "INFO",
        "logger": "hyperspot.modules.notes.service",
        "message": "created n1",
        "request_id": "req-1",
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "tenant": "acme",
        "module": "notes",  # from the module's logger when no request names one
        "process": "-",  # the platform's own process; a module process names itself
        "note_id": "n1",
        "size": 3,
    }
    assert len(created["trace_id"]) == 32 and len(created["span_id"]) == 16
    assert failed["level"] == "ERROR" and failed["trace_id"] == created["trace_id"]
    assert failed["exception"].startswith("Traceback (most recent call last)")
    assert failed["exception"].endswith("ValueError: bad input")
    assert (outside["request_id"], outside["trace_id"], outside["span_id"]) == ("-", "-", "-")
    assert (outside["tenant"], outside["module"]) == ("-", "hello")


def test_a_module_process_line_is_logged_as_the_record_it_was(tmp_path: Path) -> None:
    from hyperspot.platform.logs import relay_line

    child = tmp_path / "child.log"
    configure(file={"path": str(child)})
    with bound(request_id_var, "req-9"), bound(tenant_var, "acme"):
        logging.getLogger("hyperspot.modules.notes").warning("slow %s", "query", extra={"ms": 9})
        try:
            raise KeyError("gone")
        except KeyError:
            logging.getLogger("echo").exception("failed")
    stop_logging()
    written = child.read_text(encoding="utf-8").splitlines()

    platform = tmp_path / "platform.log"
    configure(file={"path": str(platform)})
    for line in written:
        relay_line(line, "notes:42")
    relay_line("Traceback (most recent call last):", "notes:42")  # before logging was set up
    relay_line('{"not": "a record"}', "notes:42")
    stop_logging()
    slow, failed, raw, other = json_lines(platform)
    assert slow == json.loads(written[0])
    assert (slow["message"], slow["tenant"], slow["ms"]) == ("slow query", "acme", 9)
    assert failed["exception"].endswith("KeyError: 'gone'")
    assert (raw["level"], raw["process"], raw["message"]) == (
        "WARNING",
        "notes:42",
        "Traceback (most recent call last):",
    )
    assert other["message"] == '{"not": "a record"}'


def test_text_lines_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LoggingSettings(format="text"))
    tracer = TracerProvider().get_tracer("test")
    logger = logging.getLogger("hyperspot.test")
    logger.info("no request here")
    with (
        bound(request_id_var, "req-2"),
        bound(tenant_var, "acme"),
        tracer.start_as_current_span("work") as span,
    ):
        logger.warning("hello %s", "world")
        try:
            raise KeyError("k")
        except KeyError:
            logger.exception("lookup failed")
    err = capsys.readouterr().err
    trace8 = format(span.get_span_context().trace_id, "032x")[:8]
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"
    lines = err.splitlines()
    assert re.fullmatch(rf"{stamp} INFO    hyperspot\.test \[-\] no request here", lines[0])
    assert re.fullmatch(
        rf"{stamp} WARNING hyperspot\.test \[req-2 trace={trace8} tenant=acme\] hello world",
        lines[1],
    )
    assert "lookup failed" in lines[2] and lines[3] == "Traceback (most recent call last):"
    assert lines[-1] == "KeyError: 'k'"
    assert "\033[" not in err  # not a terminal: no colour


def test_text_colours_only_the_level() -> None:
    record = logging.makeLogRecord({"name": "x", "levelno": 40, "levelname": "ERROR", "msg": "m"})
    coloured = TextFormatter(colour=True).format(record)
    assert "\033[31mERROR  \033[0m x [-] m" in coloured
    assert "\033[" not in TextFormatter().format(record)


def test_module_levels(tmp_path: Path) -> None:
    path = tmp_path / "h.log"
    configure(level="INFO", modules={"notes": "DEBUG", "ghost": "ERROR"}, file={"path": str(path)})
    logging.getLogger("hyperspot.modules.notes").debug("notes debug")
    logging.getLogger("hyperspot.modules.notes.repo").debug("notes repo debug")
    logging.getLogger("hyperspot.modules.hello").debug("hello debug")
    logging.getLogger("hyperspot.modules.hello").info("hello info")
    logging.getLogger("hyperspot.modules.ghost").warning("ghost warning")
    configure(level="INFO", file={"path": str(path)})  # no modules any more: back to the root's
    logging.getLogger("hyperspot.modules.notes").debug("notes debug again")
    stop_logging()
    messages = [line["message"] for line in json_lines(path)]
    assert messages == ["notes debug", "notes repo debug", "hello info"]
    assert logging.getLogger("hyperspot.modules.notes").level == logging.NOTSET


def test_secrets_are_masked() -> None:
    token = bearer("acme")["Authorization"].partition(" ")[2]
    key = "hsk_acme_" + "0" * 32 + "_Zm9vYmFyYmF6-_x"
    assert mask_secrets(f"Authorization: Bearer {token}") == "Authorization: Bearer ***"
    assert mask_secrets(f"token={token}; next") == "token=***; next"
    assert mask_secrets(f"key '{key}' refused") == "key '***' refused"
    assert mask_secrets(f"authorization: bearer {key}") == "authorization: bearer ***"
    assert mask_secrets("bearer sometoken123") == "bearer ***"
    for harmless in ('Bearer realm="hyperspot"', "the bearer token expired", "eyJ alone"):
        assert mask_secrets(harmless) == harmless

    logger = logging.getLogger("hyperspot.test")
    try:
        raise RuntimeError(f"rejected {token}")
    except RuntimeError as error:
        record = logger.makeRecord(
            "hyperspot.test",
            logging.ERROR,
            __file__,
            1,
            "key %s",
            (key,),
            (type(error), error, None),
        )
    record.header = f"Bearer {token}"
    record.nested = {"keys": [key]}
    text = TextFormatter().format(record)
    assert token not in text and key not in text and "RuntimeError: rejected ***" in text
    record.exc_text = None  # as a fresh record would have it
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "key ***"
    assert entry["exception"].endswith("RuntimeError: rejected ***")
    assert (entry["header"], entry["nested"]) == ("Bearer ***", {"keys": ["***"]})


def buffer_log(buffer: TraceLogBuffer, trace_id: str, message: str) -> None:
    fields = {"name": "t", "levelname": "INFO", "msg": message, "trace_id": trace_id}
    buffer.handle(logging.makeLogRecord({**fields, "span_id": "s" * 16}))


def test_trace_log_buffer_is_bounded() -> None:
    buffer = TraceLogBuffer(max_traces=3, max_lines=2)
    buffer_log(buffer, "-", "no trace")
    for trace in ("a", "b", "c"):
        buffer_log(buffer, trace, f"{trace}1")
    buffer_log(buffer, "a", "a2")  # writing keeps a trace among the recent ones
    buffer_log(buffer, "d", "d1")  # so the oldest unwritten (b) goes
    assert buffer.trace_ids() == ["c", "a", "d"]
    assert buffer.lines_for("b") == [] and buffer.lines_for("-") == []
    buffer_log(buffer, "a", "a3")
    lines = buffer.lines_for("a")
    assert [line.message for line in lines] == ["a2", "a3"]  # the latest max_lines
    assert (lines[0].logger, lines[0].level, lines[0].span_id) == ("t", "INFO", "s" * 16)
    assert lines[0].at.tzinfo is not None


def test_trace_log_buffer_caps_the_lines_in_all() -> None:
    buffer = TraceLogBuffer(max_traces=10, max_lines=3, max_total_lines=4)
    for trace in ("a", "b", "c"):
        buffer_log(buffer, trace, f"{trace}1")
        buffer_log(buffer, trace, f"{trace}2")
    assert buffer.trace_ids() == ["b", "c"]  # six lines in all: the oldest trace went
    buffer_log(buffer, "c", "c3")  # five lines: b goes
    buffer_log(buffer, "c", "c4")  # c is full: its own oldest line goes
    assert buffer.trace_ids() == ["c"]
    assert [line.message for line in buffer.lines_for("c")] == ["c2", "c3", "c4"]


def test_trace_logs_collects_the_lines_of_a_trace() -> None:
    configure()
    tracer = TracerProvider().get_tracer("test")
    logger = logging.getLogger("hyperspot.test")
    with tracer.start_as_current_span("outer") as outer:
        logger.info("first")
        with tracer.start_as_current_span("inner") as inner:
            logger.warning("second, token hsk_acme_1_2")
    trace_id = format(outer.get_span_context().trace_id, "032x")
    lines = trace_logs().lines_for(trace_id)
    assert [(line.message, line.level) for line in lines] == [
        ("first", "INFO"),
        ("second, token ***", "WARNING"),
    ]
    assert lines[1].span_id == format(inner.get_span_context().span_id, "016x")


def rotated(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if STAMPED.fullmatch(path.name))


def test_rotation_by_size_to_timestamped_files_with_retention(tmp_path: Path) -> None:
    path = tmp_path / "h.log"
    configure(file={"path": str(path), "max_bytes": 2048, "retention_days": 1})
    logger = logging.getLogger("hyperspot.test")
    for n in range(60):
        logger.info("line %03d %s", n, "x" * 60)
    stop_logging()
    files = rotated(tmp_path)
    assert len(files) >= 3
    assert all(file.stat().st_size <= 2048 for file in [*files, path])
    # Nothing lost, and in order: oldest rotated file first, the live file last.
    messages = [line["message"][:8] for file in [*files, path] for line in json_lines(file)]
    assert messages == [f"line {n:03d}" for n in range(60)]

    # Rotated files older than the retention go at the next rollover; younger ones stay.
    old = time.time() - 2 * DAY
    for file in files[:2]:
        os.utime(file, (old, old))
    configure(file={"path": str(path), "max_bytes": 2048, "retention_days": 1})
    for n in range(30):
        logger.info("more %03d %s", n, "y" * 60)
    stop_logging()
    remaining = rotated(tmp_path)
    assert not set(files[:2]) & set(remaining)
    assert set(files[2:]) <= set(remaining) and len(remaining) > len(files) - 2


def test_a_line_longer_than_max_bytes_does_not_rotate_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "h.log"
    configure(file={"path": str(path), "max_bytes": 1024})
    logger = logging.getLogger("hyperspot.test")
    logger.info("a" * 3000)
    logger.info("b" * 3000)
    stop_logging()
    files = rotated(tmp_path)
    assert len(files) == 1 and files[0].stat().st_size > 3000
    assert json_lines(path)[0]["message"] == "b" * 3000


def test_start_up_removes_expired_rotated_files_only(tmp_path: Path) -> None:
    old = time.time() - 30 * DAY
    names = {
        "expired": "h.log.2026-10-01T00-00-00.000",
        "expired_twin": "h.log.2026-10-01T00-00-00.000-1",
        "recent": "h.log.2026-11-20T00-00-00.000",
        "other_log": "other.log.2026-10-01T00-00-00.000",
        "not_rotated": "h.log.bak",
    }
    for kind, name in names.items():
        (tmp_path / name).write_text("x\n", encoding="utf-8")
        if kind != "recent":
            os.utime(tmp_path / name, (old, old))
    configure(file={"path": str(tmp_path / "h.log"), "retention_days": 28})
    left = {path.name for path in tmp_path.iterdir()}
    assert left == {"h.log", names["recent"], names["other_log"], names["not_rotated"]}


def test_reconfiguring_replaces_the_previous_set_up(tmp_path: Path) -> None:
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    configure(file={"path": str(first)})
    logger = logging.getLogger("hyperspot.test")
    logger.info("one")
    configure(file={"path": str(second)}, format="json")
    logger.info("two")
    root = logging.getLogger()
    assert len(root.handlers) == 2  # the trace buffer and one queue to one file writer
    # An unusable file keeps the current set-up and says why in one line.
    with pytest.raises(HyperspotError, match="cannot write the log file"):
        configure(file={"path": str(tmp_path)})
    logger.info("three")
    stop_logging()
    stop_logging()  # twice is harmless (and atexit calls it once more)
    assert [line["message"] for line in json_lines(first)] == ["one"]
    assert [line["message"] for line in json_lines(second)] == ["two", "three"]
    assert threads_named("QueueListener") == []

    # A command beside the server: same configuration, but the file is the server's alone.
    third = tmp_path / "third.log"
    configure_logging(
        LoggingSettings.model_validate({"console": False, "file": {"path": str(third)}}),
        write_file=False,
    )
    logger.warning("four")
    assert not third.exists() and logging.getLogger().handlers == [trace_logs()]


def threads_named(word: str) -> list[str]:
    # A QueueListener's thread runs its _monitor method.
    return [
        t.name
        for t in threading.enumerate()
        if word in repr(getattr(t, "_target", None)) and t.is_alive()
    ]


def test_server_writes_json_lines_to_a_rotating_file(launcher: Launcher, tmp_path: Path) -> None:
    path = tmp_path / "h.log"
    server = launcher.start(
        {"logging": {"format": "json", "file": {"path": str(path), "max_bytes": 4096}}}
    )
    ids = []
    for n in range(40):
        response = server.client.get("/hello/v1/greetings/en", params={"name": f"n{n}"})
        assert response.status_code == 200
        ids.append(response.headers["X-Request-Id"])
    assert server.stop() == 0  # the queue is written out at exit
    files = [*rotated(tmp_path), path]
    assert len(files) > 2
    entries = [entry for file in files for entry in json_lines(file)]
    access = {e["request_id"]: e for e in entries if e["logger"] == "hyperspot.access"}
    assert set(ids) <= set(access)
    assert access[ids[0]]["message"].startswith("GET /hello/v1/greetings/en?name=n0 200")
    assert {"ts", "level", "logger", "trace_id", "span_id", "tenant", "module"} <= set(
        access[ids[0]]
    )
    # The console still has every line too.
    console = server.log()
    assert all(request_id in console for request_id in ids)
