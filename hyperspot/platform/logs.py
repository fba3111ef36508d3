"""Logging: one line per event, text or JSON, each carrying its request, trace and tenant.

Records get their context (request id, trace and span ids, tenant, module) where they are made,
in the thread or task that logs. Up to three handlers sit on the root logger:

- the console (stderr), written at once, so log lines and the CLI's own messages on stderr stay in
  order and a test or operator sees a request's lines once its answer is out;
- the per-trace buffer for the admin trace view, in memory, also at once, so a trace's lines are
  there when the trace is;
- a queue to one listener thread that owns the log file, its rotation and retention: the only
  writer of the file in this process, and no request waits on disk I/O.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import json
import logging
import logging.handlers
import os
import queue
import re
import sys
import threading
import time
from collections import OrderedDict, deque
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from opentelemetry import trace

from hyperspot.platform.config import LogFileSettings, LoggingSettings
from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.observability.models import LogLine

UNKNOWN = "-"

# Set by the gateway: the request id at request start, tenant and module once they are known.
request_id_var: ContextVar[str] = ContextVar("request_id", default=UNKNOWN)
tenant_var: ContextVar[str] = ContextVar("tenant", default=UNKNOWN)
module_var: ContextVar[str] = ContextVar("module", default=UNKNOWN)

# The record attribute holding each context field: a LogRecord's own ``module`` is the source
# file's name, so the HyperSpot module travels as ``hyperspot_module``.
CONTEXT_FIELDS = {
    "request_id": "request_id",
    "trace_id": "trace_id",
    "span_id": "span_id",
    "tenant": "tenant",
    "module": "hyperspot_module",
    "process": "hyperspot_process",
}

# Attributes every record has; whatever else a record carries came from ``extra=``.
# ``color_message``: uvicorn's coloured copy of the message, noise in a log line.
_STANDARD_ATTRS = (
    frozenset(vars(logging.makeLogRecord({})))
    | {"message", "asctime", "taskName", "color_message"}
    | set(CONTEXT_FIELDS.values())
)

_MODULE_LOGGER_PREFIX = "hyperspot.modules."


class ContextFilter(logging.Filter):
    """Stamps the current request, trace and tenant on each record.

    It must run where the record is made (the handlers on the root logger), not in the listener
    thread, where neither the context variables nor the current span are those of the caller.
    Values passed explicitly with ``extra=`` win.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "request_id") and hasattr(record, "trace_id"):
            return True  # stamped already (a record seen by a second handler)
        attrs = vars(record)
        attrs.setdefault("request_id", request_id_var.get())
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            attrs.setdefault("trace_id", format(span.trace_id, "032x"))
            attrs.setdefault("span_id", format(span.span_id, "016x"))
        else:
            attrs.setdefault("trace_id", UNKNOWN)
            attrs.setdefault("span_id", UNKNOWN)
        attrs.setdefault("tenant", tenant_var.get())
        module = module_var.get()
        if module == UNKNOWN and record.name.startswith(_MODULE_LOGGER_PREFIX):
            # A module's background work logs outside any request: its logger names it.
            module = record.name[len(_MODULE_LOGGER_PREFIX) :].split(".", 1)[0]
        attrs.setdefault("hyperspot_module", module)
        attrs.setdefault("hyperspot_process", _state.process_label)
        return True


_CONTEXT = ContextFilter()


# ---- secrets: a last safety net; the platform does not log credentials on purpose --------------

_SECRET = re.compile(
    # "Bearer <token>" keeps the scheme; 8+ characters so that 'Bearer realm=' stays readable.
    r"(?P<scheme>\b(?i:bearer)\s+)[A-Za-z0-9._~+/-]{8,}=*"
    # A JWT: three base64url parts, the first a JSON object ('{"' encodes as 'eyJ').
    r"|(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    # A platform API key: hsk_<tenant>_<key id>_<secret>.
    r"|\bhsk_[A-Za-z0-9_-]+"
)


def _masked(match: re.Match[str]) -> str:
    return (match.group("scheme") or "") + "***"


def mask_secrets(text: str) -> str:
    """``text`` with bearer tokens, JWTs and API keys replaced by ``***``."""
    return _SECRET.sub(_masked, text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(key): _mask_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_value(item) for item in value]
    return mask_secrets(str(value))


# ---- formats --------------------------------------------------------------------------------


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    # The queue handler turns exc_info into exc_text before the record crosses threads.
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    text = record.exc_text or ""
    if record.stack_info:
        text = f"{text}\n{formatter.formatStack(record.stack_info)}".lstrip("\n")
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            {name: getattr(record, attr, UNKNOWN) for name, attr in CONTEXT_FIELDS.items()}
        )
        entry.update(
            {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRS}
        )
        exception = _exception_text(self, record)
        if exception:
            entry["exception"] = exception
        # Masked field by field: in the encoded line a secret may follow an escape such as \n.
        return json.dumps({key: _mask_value(value) for key, value in entry.items()}, default=str)


_LEVEL_COLOURS = {
    logging.DEBUG: "\033[2m",
    logging.INFO: "\033[32m",
    logging.WARNING: "\033[33m",
    logging.ERROR: "\033[31m",
    logging.CRITICAL: "\033[1;31m",
}
_RESET = "\033[0m"


class TextFormatter(logging.Formatter):
    """``ts level logger [request_id trace=<8 hex> tenant=<t>] message``, for people.

    The trace and tenant parts appear only when known, so lines outside a request stay short.
    """

    def __init__(self, *, colour: bool = False) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        level = f"{record.levelname:<7}"
        if self.colour:
            level = f"{_LEVEL_COLOURS.get(record.levelno, '')}{level}{_RESET}"
        context = str(getattr(record, "request_id", UNKNOWN))
        trace_id = str(getattr(record, "trace_id", UNKNOWN))
        if trace_id != UNKNOWN:
            context += f" trace={trace_id[:8]}"
        tenant = str(getattr(record, "tenant", UNKNOWN))
        if tenant != UNKNOWN:
            context += f" tenant={tenant}"
        process = str(getattr(record, "hyperspot_process", UNKNOWN))
        name = record.name if process == UNKNOWN else f"{process} {record.name}"
        line = f"{_timestamp(record)} {level} {name} [{context}] {record.getMessage()}"
        exception = _exception_text(self, record)
        if exception:
            line = f"{line}\n{exception}"
        return mask_secrets(line)


def make_formatter(kind: str, *, colour: bool = False) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else TextFormatter(colour=colour)


# ---- the log file ---------------------------------------------------------------------------

_files_logger = logging.getLogger("hyperspot.logs")

_STAMP = r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}(?:-\d+)?"


class RotatingLogFile(logging.handlers.RotatingFileHandler):
    """Rotates by size to ``<file>.<UTC time>`` next to the live file; drops old rotated files.

    The base class does the size check and the reopening; with ``backupCount=1`` it renames the
    live file to ``rotation_filename(...)`` on each rollover, which here is a fresh timestamped
    name, so no rotated file is ever overwritten and retention is by age, not by count.

    A file that cannot be written (a full disk, a removed mount) costs log lines, never requests:
    the failure is reported once, lines are counted and dropped while it lasts, and every record
    tries a freshly opened file, so writing resumes by itself when space returns.
    """

    failure: str | None = None  # why writing fails, while it does
    dropped = 0  # records lost since the failure began

    def __init__(self, path: Path, *, max_bytes: int, retention_days: float) -> None:
        path = path.expanduser().absolute()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            super().__init__(path, maxBytes=max_bytes, backupCount=1, encoding="utf-8")
        except OSError as error:
            raise HyperspotError(f"cannot write the log file {path}: {error.strerror}") from None
        self.retention_s = retention_days * 86400
        self._rotated = re.compile(re.escape(path.name) + r"\." + _STAMP)
        self.remove_expired()

    def rotation_filename(self, default_name: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S.%f")[:-3]
        name = candidate = f"{self.baseFilename}.{stamp}"
        suffix = 0
        while os.path.exists(candidate):  # two rollovers within one millisecond
            suffix += 1
            candidate = f"{name}-{suffix}"
        return candidate

    def shouldRollover(self, record: logging.LogRecord) -> bool:  # noqa: N802 (stdlib name)
        # A record larger than max_bytes would otherwise rotate an empty file on every write.
        if self.stream is not None and self.stream.tell() == 0:
            return False
        return bool(super().shouldRollover(record))

    def doRollover(self) -> None:  # noqa: N802 (stdlib name)
        super().doRollover()
        self.remove_expired()

    def emit(self, record: logging.LogRecord) -> None:
        dropped_before = self.dropped
        super().emit(record)  # calls handleError instead of raising
        if self.failure is not None and self.dropped == dropped_before:
            lost, self.failure, self.dropped = self.dropped, None, 0
            _files_logger.warning(
                "the log file %s is writable again; %d log lines were lost", self.baseFilename, lost
            )

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (stdlib name)
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)  # a formatting bug: the stdlib's report
            return
        self.dropped += 1
        # Buffered bytes that failed would fail again on every later flush: start afresh.
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.close()
        if self.failure is None:
            self.failure = error.strerror or str(error)
            # Once per failure, not once per line. Logged from the writer thread: the record
            # reaches the console now; the file gets it (and drops it) through the queue.
            _files_logger.error(
                "cannot write the log file %s: %s; log lines are dropped until it can be written "
                "again",
                self.baseFilename,
                self.failure,
            )

    def rotated_files(self) -> list[Path]:
        """This log's rotated files, oldest name first."""
        folder = Path(self.baseFilename).parent
        try:
            names = sorted(entry.name for entry in os.scandir(folder) if entry.is_file())
        except OSError:
            return []
        return [folder / name for name in names if self._rotated.fullmatch(name)]

    def remove_expired(self) -> None:
        cutoff = time.time() - self.retention_s
        for path in self.rotated_files():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass  # gone already (another process), or not ours to delete: keep logging


# ---- per-trace capture for the admin trace view ----------------------------------------------


_PLAIN = logging.Formatter()


class _Line(NamedTuple):
    # What a LogLine is made of; the model is built when the trace is read, not on every record.
    created: float
    level: str
    logger: str
    message: str
    span_id: str


class TraceLogBuffer(logging.Handler):
    """The log lines of the most recent traces, for the admin trace view.

    Bounded three ways: traces kept, lines per trace (the latest), and lines in all, so a burst
    of chatty traces cannot hold more than ``max_total_lines``.
    """

    def __init__(
        self, max_traces: int = 2000, max_lines: int = 200, max_total_lines: int = 50_000
    ) -> None:
        super().__init__()
        self.max_traces = max_traces
        self.max_lines = max_lines
        self.max_total_lines = max_total_lines
        self._traces: OrderedDict[str, deque[_Line]] = OrderedDict()
        self._total = 0
        self._guard = threading.Lock()  # written by any thread that logs

    def emit(self, record: logging.LogRecord) -> None:
        trace_id = getattr(record, "trace_id", UNKNOWN)
        if trace_id == UNKNOWN:
            return
        message = record.getMessage()
        exception = _exception_text(_PLAIN, record)
        if exception:
            message = f"{message}\n{exception}"
        line = _Line(
            record.created,
            record.levelname,
            record.name,
            mask_secrets(message),
            str(getattr(record, "span_id", UNKNOWN)),
        )
        with self._guard:
            lines = self._traces.get(trace_id)
            if lines is None:
                lines = self._traces[trace_id] = deque(maxlen=self.max_lines)
            else:
                self._traces.move_to_end(trace_id)  # an active trace stays
            if len(lines) == self.max_lines:
                self._total -= 1  # the deque drops its oldest line
            lines.append(line)
            self._total += 1
            while len(self._traces) > 1 and (
                len(self._traces) > self.max_traces or self._total > self.max_total_lines
            ):
                _, dropped = self._traces.popitem(last=False)
                self._total -= len(dropped)

    def lines_for(self, trace_id: str) -> list[LogLine]:
        with self._guard:
            lines = list(self._traces.get(trace_id, ()))
        return [
            LogLine(
                at=datetime.fromtimestamp(line.created, UTC),
                level=line.level,
                logger=line.logger,
                message=line.message,
                span_id=line.span_id,
            )
            for line in lines
        ]

    def trace_ids(self) -> list[str]:
        """Least recently written first."""
        with self._guard:
            return list(self._traces)


_TRACE_LOGS = TraceLogBuffer()


def trace_logs() -> TraceLogBuffer:
    """This process's per-trace log buffer (the same one across reconfigurations)."""
    return _TRACE_LOGS


# ---- wiring ---------------------------------------------------------------------------------


class _QueueHandler(logging.handlers.QueueHandler):
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The stdlib version renders the message with this handler's formatter and drops the
        # traceback; the listener's formatters need the plain message and the traceback text.
        prepared = copy.copy(record)
        prepared.message = prepared.msg = record.getMessage()
        prepared.args = None
        if record.exc_info:
            prepared.exc_text = record.exc_text or _PLAIN.formatException(record.exc_info)
        prepared.exc_info = None  # tracebacks hold frames: do not keep them alive in the queue
        return prepared


@dataclass
class _Active:
    """The file's writer."""

    queue_handler: logging.handlers.QueueHandler
    listener: logging.handlers.QueueListener
    file: RotatingLogFile


@dataclass
class _State:
    active: _Active | None = None
    module_loggers: list[str] = field(default_factory=list)  # levels set from ``modules``
    atexit_registered: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Which process writes (see configure_logging); UNKNOWN for the platform's own.
    process_label: str = UNKNOWN


_state = _State()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _file_handler(settings: LogFileSettings) -> RotatingLogFile | None:
    if settings.path is None:
        return None
    handler = RotatingLogFile(
        settings.path, max_bytes=settings.max_bytes, retention_days=settings.retention_days
    )
    handler.setFormatter(make_formatter(settings.format))
    return handler


def module_process_logging(settings: LoggingSettings) -> LoggingSettings:
    """A supervised module process's logging: JSON lines on its stderr, which the platform reads
    and logs as its own (``relay_line``), to its console and its file alike."""
    return settings.model_copy(update={"format": "json", "console": True})


def relay_line(line: str, process: str) -> None:
    """Log a line a module process wrote on its stderr as if it were logged here.

    A JSON line of ``module_process_logging`` becomes the record it was (its time, level, logger,
    context, extras and traceback), so the platform's handlers format and file it like their own,
    and per-trace buffers see it. Anything else (a crash before logging was set up) is kept as
    it is, as a warning naming the process.
    """
    record = _record_from_json(line)
    if record is None:
        record = logging.makeLogRecord(
            {
                "name": "hyperspot.module_process",
                "levelno": logging.WARNING,
                "levelname": "WARNING",
                "msg": line,
                "hyperspot_process": process,
            }
        )
    for handler in logging.getLogger().handlers:
        if record.levelno >= handler.level:
            handler.handle(record)


def _record_from_json(line: str) -> logging.LogRecord | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or not {"ts", "level", "logger", "message"} <= entry.keys():
        return None
    level = logging.getLevelName(str(entry.pop("level")))
    if not isinstance(level, int):
        return None
    try:
        created = datetime.fromisoformat(str(entry.pop("ts"))).timestamp()
    except ValueError:
        created = time.time()
    attrs: dict[str, Any] = {
        "name": str(entry.pop("logger")),
        "levelno": level,
        "levelname": logging.getLevelName(level),
        "msg": str(entry.pop("message")),
        "created": created,
        "exc_text": entry.pop("exception", None),
    }
    for name, attr in CONTEXT_FIELDS.items():
        attrs[attr] = entry.pop(name, UNKNOWN)
    # What is left are the extras the module logged (extra=...): never a record's own attribute.
    attrs.update({key: value for key, value in entry.items() if key not in _STANDARD_ATTRS})
    return logging.makeLogRecord(attrs)


def configure_logging(
    settings: LoggingSettings, *, write_file: bool = True, process: str = UNKNOWN
) -> None:
    """Set up the process's logging; calling it again replaces the previous set-up.

    ``write_file=False`` leaves ``logging.file`` alone: for commands that share the server's
    configuration but must not write (or rotate) the server's log file beside it. ``process``
    labels every line (a module process: ``<module>:<pid>``), as lines of several processes
    share one stderr.
    """
    with _state.lock:
        _state.process_label = process
        # The new file first: when its path is unusable, the previous set-up stays.
        file_handler = _file_handler(settings.file) if write_file else None
        _stop_locked()
        handlers: list[logging.Handler] = []
        if settings.console:
            console = logging.StreamHandler(sys.stderr)
            console.setFormatter(make_formatter(settings.format, colour=_is_tty(sys.stderr)))
            handlers.append(console)
        handlers.append(_TRACE_LOGS)
        if file_handler is not None:
            records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
            queue_handler = _QueueHandler(records)
            listener = logging.handlers.QueueListener(records, file_handler)
            listener.start()
            handlers.append(queue_handler)
            _state.active = _Active(queue_handler, listener, file_handler)
        for handler in handlers:
            handler.addFilter(_CONTEXT)  # no-op when it has it already

        root = logging.getLogger()
        root.handlers[:] = handlers
        root.setLevel(settings.level)
        for name in _state.module_loggers:
            logging.getLogger(name).setLevel(logging.NOTSET)
        _state.module_loggers = [f"{_MODULE_LOGGER_PREFIX}{module}" for module in settings.modules]
        for name, level in zip(_state.module_loggers, settings.modules.values(), strict=True):
            logging.getLogger(name).setLevel(level)
        # Uvicorn's own loggers go through ours; its access log is replaced by the gateway's.
        for name in ("uvicorn", "uvicorn.error"):
            logging.getLogger(name).handlers[:] = []
            logging.getLogger(name).propagate = True
        logging.getLogger("uvicorn.access").disabled = True

        if not _state.atexit_registered:
            # Runs before logging's own shutdown hook (registered earlier), so the queue drains.
            atexit.register(stop_logging)
            _state.atexit_registered = True


def stop_logging() -> None:
    """Write out what is queued for the log file and stop its writer.

    The console and the trace buffer stay on the root logger: what is logged later in the
    shutdown is still seen.
    """
    with _state.lock:
        _stop_locked()


def _stop_locked() -> None:
    active, _state.active = _state.active, None
    if active is None:
        return
    logging.getLogger().removeHandler(active.queue_handler)
    active.listener.stop()  # writes out everything queued before it returns
    active.file.close()
