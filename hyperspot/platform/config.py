"""Configuration: one YAML file, overridden by ``HYPERSPOT_`` environment variables, validated once.

Precedence is defaults < YAML file < environment. Every value remembers where it came from, so a
validation error names the file and line (or the variable) and ``hyperspot config show`` can print
each value's source.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hyperspot.platform.errors import ConfigError

ENV_PREFIX = "HYPERSPOT_"
ENV_NESTING = "__"
# Variables with the prefix that are not configuration keys (read by the CLI or the test sandbox).
ENV_NOT_CONFIG = ("HYPERSPOT_CONFIG", "HYPERSPOT_TEST_")

_SECRET_KEY = re.compile(r"(password|secret|token|api_key|apikey|private_key)", re.IGNORECASE)
MASK = "********"

ConfigPath = tuple[str | int, ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorsSettings(_Strict):
    allow_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty disables CORS, '*' any."
    )
    allow_credentials: bool = False
    expose_headers: list[str] = Field(default_factory=lambda: ["X-Request-Id"])


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8087, ge=0, le=65535)
    grace_period_s: float = Field(
        default=10.0, ge=0, description="How long in-flight requests may run after SIGTERM."
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    # The bounds below keep one client from holding memory, sockets or workers (README's table).
    max_json_depth: int = Field(
        default=32,
        ge=1,
        le=200,
        description="Nesting depth of a JSON request body (the parser itself stops at 200).",
    )
    max_header_bytes: int = Field(
        default=32_768, ge=1024, description="Request line and headers together (else 431)."
    )
    max_headers: int = Field(default=100, ge=1, description="Header lines per request (else 431).")
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A request's line and headers must arrive within this (else 408, closed).",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A request's body must arrive within this after its headers (else 408).",
    )
    keep_alive_s: int = Field(
        default=5, ge=1, description="An idle keep-alive connection is closed after this."
    )
    max_connections: int | None = Field(
        default=1024,
        ge=1,
        description="Open connections (or requests in progress) beyond which requests get 503.",
    )
    backlog: int = Field(
        default=2048, ge=1, description="Connections the kernel queues before they are accepted."
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Server processes sharing the port, each with the full runtime (one GIL each); "
            "1 serves in the `hyperspot up` process itself."
        ),
    )
    cors: CorsSettings = Field(default_factory=CorsSettings)


class DatabaseSettings(_Strict):
    url: str | None = Field(
        default=None, description="Database URL; empty means SQLite under data_dir."
    )
    pool_size: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Worker threads for database work (one connection each).",
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Longest wait for a new database connection."
    )
    statement_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description=(
            "Longest one unit of database work (a request's transaction) may take: past it the "
            "request is answered 503 and the database cancels the statement."
        ),
    )
    migrate_on_start: bool = Field(
        default=True, description="Apply pending migrations at start-up (else refuse to start)."
    )


class JwtSettings(_Strict):
    secret: str | None = Field(
        default=None, description="HS256 signing secret (also what `hyperspot token issue` uses)."
    )
    jwks_file: Path | None = Field(
        default=None,
        description="A JWKS file with the RS256/ES256 public keys tokens are signed by.",
    )
    jwks_url: str | None = Field(
        default=None, description="A JWKS URL (an identity provider's) for RS256/ES256 keys."
    )
    issuer: str = "hyperspot"
    audience: str = "hyperspot"
    leeway_s: float = Field(default=30.0, ge=0, le=600, description="Allowed clock skew.")

    @property
    def configured(self) -> bool:
        return bool(self.secret or self.jwks_file or self.jwks_url)


class DevAuthSettings(_Strict):
    tenant: str = Field(default="root", description="The tenant every request acts in.")
    subject: str = "developer"


class AuthSettings(_Strict):
    mode: Literal["jwt", "dev"] = Field(
        default="jwt",
        description=(
            "'jwt': every protected operation needs a credential. 'dev': no authentication, "
            "every request is a platform administrator; only on a loopback address."
        ),
    )
    root_tenant: str = Field(
        default="root",
        description="The tenant at the top of the tree; its administrators run the platform.",
    )
    jwt: JwtSettings = Field(default_factory=JwtSettings)
    dev: DevAuthSettings = Field(default_factory=DevAuthSettings)
    cache_ttl_s: float = Field(
        default=2.0,
        ge=0,
        le=300,
        description="How long roles, API keys and tenant states are reused before re-reading.",
    )


class BucketSettings(_Strict):
    rate_per_s: float = Field(gt=0, description="Tokens added per second.")
    burst: int = Field(ge=1, description="Bucket size: requests admitted at once.")


class RateLimitClass(_Strict):
    tenant: BucketSettings | None = Field(default=None, description="One bucket per tenant.")
    subject: BucketSettings | None = Field(
        default=None, description="One bucket per subject (or client address when anonymous)."
    )


class RateLimitSettings(_Strict):
    backend: Literal["memory", "redis"] = Field(
        default="memory",
        description="'redis' shares the buckets between server instances.",
    )
    redis_url: str = "redis://127.0.0.1:6379/0"
    classes: dict[str, RateLimitClass] = Field(
        default_factory=dict,
        description=(
            "Limits per operation class (an operation's rate_limit(), else 'default'); "
            "a class not listed here is unlimited."
        ),
    )
    failed_credentials: BucketSettings | None = Field(
        default=None,
        description=(
            "Failed authentications allowed per client address (e.g. {rate_per_s: 0.5, burst: "
            "20}): once spent, that address's credentials are refused with 429, unverified, "
            "until a token refills. Off by default: behind a proxy the address must be the "
            "client's (uvicorn trusts X-Forwarded-For from 127.0.0.1 only)."
        ),
    )


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class LogFileSettings(_Strict):
    path: Path | None = Field(default=None, description="Also write logs to this file.")
    format: Literal["text", "json"] = "json"
    max_bytes: int = Field(
        default=1000 * 1024 * 1024, ge=1024, description="Rotate the file at this size."
    )
    retention_days: float = Field(
        default=28, gt=0, description="Delete rotated files older than this."
    )


class LoggingSettings(_Strict):
    level: LogLevel = "INFO"
    format: Literal["text", "json"] = Field(
        default="text",
        description="Console format: 'json' lines in production, 'text' (coloured on a terminal).",
    )
    console: bool = True
    modules: dict[str, LogLevel] = Field(
        default_factory=dict, description="Level per module, e.g. {notes: DEBUG}."
    )
    file: LogFileSettings = Field(default_factory=LogFileSettings)


TraceExporter = Literal["ring", "console", "otlp"]


def _ring_only() -> list[TraceExporter]:
    return ["ring"]


class TracingSettings(_Strict):
    enabled: bool = True
    exporters: list[TraceExporter] = Field(
        default_factory=_ring_only,
        description="'ring': recent traces kept in memory for /admin/traces and the dashboard.",
    )
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    sample_ratio: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "Share of requests traced in full (a caller's sampled traceparent is always "
            "followed). Every request still gets a trace id in its logs; 1.0 costs ~20% of a "
            "small request's throughput (docs/performance.md)."
        ),
    )
    ring_traces: int = Field(default=2000, ge=10, description="Traces the ring buffer keeps.")


class MetricsSettings(_Strict):
    enabled: bool = True
    tenant_labels: int = Field(
        default=20,
        ge=0,
        description="Tenants with a label of their own in metrics; the rest are 'other'.",
    )
    window_minutes: int = Field(
        default=60, ge=1, le=1440, description="How much request history /admin/stats keeps."
    )


class ObservabilitySettings(_Strict):
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    latency_thresholds_ms: dict[str, float] = Field(
        default_factory=lambda: {"default": 1000.0},
        description=(
            "Latency threshold per route ('GET /notes/v1/notes') or 'default'; a slower request "
            "is logged and shown as a breach."
        ),
    )


class ClientSettings(_Strict):
    """Module-to-module calls (ClientHub) that cross processes."""

    secret: str | None = Field(
        default=None,
        min_length=32,
        description=(
            "Signs the caller's context on calls between the platform's processes. Needed for "
            "'remote' modules (the same value on both sides); generated per run for 'oop' ones."
        ),
    )
    timeout_s: float = Field(default=5.0, gt=0, le=300, description="Per call attempt.")
    retries: int = Field(
        default=2, ge=0, le=10, description="Extra attempts for idempotent methods."
    )
    backoff_s: float = Field(default=0.1, ge=0, le=30, description="First retry delay (doubles).")
    start_timeout_s: float = Field(
        default=30.0, gt=0, description="How long an out-of-process module may take to get ready."
    )
    restart_backoff_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait before restarting a crashed module process."
    )
    forward_timeout_s: float = Field(
        default=60.0, gt=0, description="REST requests forwarded to a module in another process."
    )
    liveness_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often the platform asks each module process it supervises for /healthz.",
    )
    liveness_failures: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Probes in a row a module process may leave unanswered before it is killed "
        "and restarted (it hangs: alive is not enough).",
    )


class ModuleDeployment(_Strict):
    """Where a module runs and how other modules reach it: keys of its ``modules.<name>`` section
    beside its own settings."""

    runtime: Literal["local", "oop", "remote"] = Field(
        default="local",
        description=(
            "'local': in this process; 'oop': in a child process the platform supervises; "
            "'remote': served by `hyperspot run-module` on another host (see address)."
        ),
    )
    transport: Literal["local", "http", "grpc"] | None = Field(
        default=None,
        description="How ClientHub calls it: 'local' (direct) for local modules, else http/grpc.",
    )
    address: str | None = Field(
        default=None, description="Remote modules: the base URL of its HTTP server."
    )
    grpc_address: str | None = Field(
        default=None, description="Remote modules with transport grpc: host:port of its gRPC."
    )

    @property
    def chosen_transport(self) -> Literal["local", "http", "grpc"]:
        if self.transport is not None:
            return self.transport
        return "local" if self.runtime == "local" else "http"


DEPLOYMENT_KEYS = frozenset(ModuleDeployment.model_fields)


class PlatformSettings(_Strict):
    data_dir: Path = Field(default=Path(".hyperspot"), description="Where local state is kept.")
    modules_path: list[Path] = Field(
        default_factory=list, description="Folders holding a project's own module packages."
    )
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    clients: ClientSettings = Field(default_factory=ClientSettings)
    # Each module's section is validated against that module's own config model once modules are
    # discovered (see ``validate_module_sections``); here it is only required to be a mapping.
    modules: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.data_dir / 'hyperspot.db').resolve()}"


@dataclass(frozen=True)
class Source:
    """Where a configuration value came from."""

    kind: Literal["default", "file", "env"]
    file: Path | None = None
    line: int | None = None
    variable: str | None = None

    def __str__(self) -> str:
        if self.kind == "file":
            return f"{self.file}:{self.line}"
        if self.kind == "env":
            return f"env {self.variable}"
        return "default"


DEFAULT_SOURCE = Source("default")


@dataclass
class LoadedConfig:
    """Validated platform settings, the raw module sections and where every value came from."""

    settings: PlatformSettings
    sources: dict[ConfigPath, Source] = field(default_factory=dict)
    # The file it was read from, if any: module processes started by this one read it too.
    path: Path | None = None

    def source_of(self, path: ConfigPath) -> Source:
        return _source_of(self.sources, path)


def _source_of(sources: Mapping[ConfigPath, Source], path: ConfigPath) -> Source:
    # A value inherits the source of its nearest ancestor that was set explicitly.
    for end in range(len(path), 0, -1):
        found = sources.get(path[:end])
        if found is not None:
            return found
    # A section only ever set through its children (by environment variables) has theirs.
    return next((src for key, src in sources.items() if key[: len(path)] == path), DEFAULT_SOURCE)


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read the YAML file (if any), apply environment overrides, validate the platform sections."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    sources: dict[ConfigPath, Source] = {}
    if path is not None:
        raw, sources = _read_yaml(path)
    problems = _apply_env(raw, sources, environ)
    if problems:
        raise ConfigError(problems)
    try:
        settings = PlatformSettings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe(error, (), sources)) from None
    for name, section in settings.modules.items():
        if not isinstance(section, dict):  # pragma: no cover - pydantic already enforces mappings
            raise ConfigError([f"modules.{name}: expected a mapping"])
    return LoadedConfig(settings=settings, sources=sources, path=path)


def validate_section(
    model: type[BaseModel], data: Mapping[str, Any], prefix: ConfigPath, loaded: LoadedConfig
) -> BaseModel:
    """Validate one module's section against its model, refusing keys the model does not declare."""
    problems: list[str] = []
    known = set(model.model_fields)
    for key in data:
        if key not in known:
            problems.append(_unknown_key((*prefix, key), known, loaded.source_of((*prefix, key))))
    if problems:
        raise ConfigError(problems)
    try:
        return model.model_validate(dict(data))
    except ValidationError as error:
        raise ConfigError(_describe(error, prefix, loaded.sources)) from None


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[ConfigPath, Source]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([f"cannot read config file {path}: {error.strerror}"]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError([f"{where}: invalid YAML: {problem}"]) from None
    finally:
        loader.dispose()
    if node is None or data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: the config file must hold a mapping of sections"])
    sources: dict[ConfigPath, Source] = {}
    for key_path, line in _node_lines(node, ()):
        sources[key_path] = Source("file", file=path, line=line)
    return data, sources


def _node_lines(node: yaml.Node, prefix: ConfigPath) -> Iterator[tuple[ConfigPath, int]]:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = (*prefix, str(key_node.value))
            yield key_path, key_node.start_mark.line + 1
            yield from _node_lines(value_node, key_path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield (*prefix, index), item.start_mark.line + 1
            yield from _node_lines(item, (*prefix, index))


def _apply_env(
    raw: dict[str, Any], sources: dict[ConfigPath, Source], environ: Mapping[str, str]
) -> list[str]:
    problems: list[str] = []
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable.startswith(ENV_NOT_CONFIG):
            continue
        parts = [part.lower() for part in variable[len(ENV_PREFIX) :].split(ENV_NESTING)]
        if not all(parts):
            problems.append(f"env {variable}: empty key segment (use '__' between keys)")
            continue
        value: Any = environ[variable]
        # Lists and mappings are written as JSON; scalars are coerced by the schema.
        if isinstance(value, str) and value.strip().startswith(("[", "{")):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as error:
                problems.append(f"env {variable}: invalid JSON value: {error.msg}")
                continue
        target = raw
        for depth, part in enumerate(parts[:-1]):
            child = target.get(part)
            if not isinstance(child, dict):
                if child is not None:
                    where = ".".join(parts[: depth + 1])
                    problems.append(f"env {variable}: {where} is not a section")
                    break
                child = target[part] = {}
            target = child
        else:
            target[parts[-1]] = value
            sources[tuple(parts)] = Source("env", variable=variable)
    return problems


def _describe(
    error: ValidationError, prefix: ConfigPath, sources: Mapping[ConfigPath, Source]
) -> list[str]:
    problems = []
    for item in error.errors(include_url=False):
        path: ConfigPath = prefix + tuple(item["loc"])
        source = _source_of(sources, path)
        if item["type"] == "extra_forbidden":
            parent = _model_fields_at(path[:-1])
            problems.append(_unknown_key(path, parent, source))
            continue
        dotted = _dotted(path)
        if item["type"] == "missing":
            problems.append(f"{dotted}: required value is missing ({_where_to_set(path)})")
            continue
        problems.append(f"{dotted}: {item['msg']}, got {item['input']!r} (from {source})")
    return problems


def _unknown_key(path: ConfigPath, known: set[str], source: Source) -> str:
    key = str(path[-1])
    hint = difflib.get_close_matches(key, sorted(known), n=1)
    suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
    return f"{_dotted(path)}: unknown key (from {source}){suggestion}"


def _model_fields_at(path: ConfigPath) -> set[str]:
    model: type[BaseModel] = PlatformSettings
    for part in path:
        annotation = model.model_fields.get(str(part))
        sub = annotation.annotation if annotation is not None else None
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            return set()
        model = sub
    return set(model.model_fields)


def _where_to_set(path: ConfigPath) -> str:
    return f"set it in the config file or in {env_variable_for(path)}"


def _dotted(path: ConfigPath) -> str:
    return ".".join(str(part) for part in path)


def env_variable_for(path: ConfigPath) -> str:
    """The environment variable that overrides the value at ``path``."""
    return ENV_PREFIX + ENV_NESTING.join(str(part).upper() for part in path)


def mask_secrets(key: str, value: Any) -> Any:
    """Hide secret values and the password part of URLs before they are shown to anyone."""
    if value is None:
        return None
    if _SECRET_KEY.search(key):
        return MASK
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:{MASK}@{parts.hostname}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def flatten(value: Any, prefix: ConfigPath = ()) -> Iterator[tuple[ConfigPath, Any]]:
    """Yield (path, leaf value) pairs of a JSON-like structure, in key order."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from flatten(item, (*prefix, key))
    else:
        yield prefix, value


def changed_paths(old: Any, new: Any) -> list[ConfigPath]:
    """The leaf paths whose values differ between two JSON-like structures (sorted)."""
    before, after = dict(flatten(old)), dict(flatten(new))
    missing = object()
    changed = {
        path
        for path in before.keys() | after.keys()
        if before.get(path, missing) != after.get(path, missing)
    }
    return sorted(changed, key=lambda path: tuple(str(part) for part in path))


def dotted(path: ConfigPath) -> str:
    """``("server", "port")`` -> ``server.port``: how messages name a key."""
    return _dotted(path)
