"""Static checks of what ships: Dockerfile paths and command, env example, lock files, CI script."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from typer.main import get_command

from monitor.cli import app
from monitor.settings import Settings

ROOT = Path(__file__).parent.parent


def test_dockerfile_copies_existing_paths_and_runs_a_real_command() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    cmd = re.search(r'^CMD \["monitor", "([a-z-]+)"', text, re.M)
    assert cmd, "CMD must run the monitor CLI"
    assert cmd.group(1) in get_command(app).commands  # type: ignore[attr-defined]
    assert re.search(r"^USER monitor$", text, re.M) and "VOLUME /data" in text


def test_env_example_lists_every_setting() -> None:
    names = {line.split("=", 1)[0] for line in (ROOT / "deploy/monitor.env.example").read_text().splitlines()
             if line.startswith("MONITOR_")}
    assert names == {f"MONITOR_{n.upper()}" for n in Settings.model_fields}


def test_lock_files_pin_every_runtime_dependency_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for lock in ("requirements.lock", "requirements-dev.lock"):
        pins = {}
        for line in (ROOT / lock).read_text().splitlines():
            if line and not line.startswith("#"):
                name, _, version = line.partition("==")
                assert version, f"{lock}: {line!r} is not an exact pin"
                pins[name.lower().replace("_", "-")] = version
        for dep in project["dependencies"]:
            name = re.split(r"[<>=!~ \[]", dep, maxsplit=1)[0].lower().replace("_", "-")
            assert name in pins, f"{lock} lacks {name}"
            assert "<" in dep, f"runtime dependency {dep} needs an upper bound"


def test_ci_runs_the_readme_test_command() -> None:
    readme_first = (ROOT / "README.md").read_text().split("```")[1]
    assert "make test" in readme_first and "make run" in readme_first
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_every_command_has_help() -> None:
    group = get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        assert command.help, f"monitor {name} has no help text"


def test_dockerfile_health_check_asks_the_open_health_route() -> None:
    from monitor.api.health import open_router

    text = (ROOT / "Dockerfile").read_text()
    check = re.search(r"^HEALTHCHECK .*\n\s+CMD (\[.*\])$", text, re.M)
    assert check and "/healthz" in check.group(1) and "EXPOSE 8080" in text
    assert "/healthz" in {route.path for route in open_router.routes}  # type: ignore[attr-defined]


def test_compose_file_parses_and_points_at_real_paths_and_commands() -> None:
    import yaml

    deploy = ROOT / "deploy"
    compose = yaml.safe_load((deploy / "compose.yaml").read_text())
    service = compose["services"]["monitor"]
    assert (deploy / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    for volume in service["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (deploy / source).exists(), volume
        else:
            assert source in compose["volumes"], volume
    assert service["command"][0] == "monitor" and service["command"][1] in get_command(app).commands  # type: ignore[attr-defined]
    assert all(port.startswith("127.0.0.1:") for port in service["ports"])  # published on the host's loopback
    assert service["environment"]["MONITOR_API_HOST"] == "0.0.0.0"  # needs MONITOR_API_TOKEN: refused without
    # the "postgres" profile: PostgreSQL, and workers running a real command against it once it is healthy
    postgres, worker = compose["services"]["postgres"], compose["services"]["worker"]
    assert postgres["profiles"] == worker["profiles"] == ["postgres"]
    assert "postgres-data" in compose["volumes"] and "pg_isready" in postgres["healthcheck"]["test"][1]
    assert worker["command"][:1] == ["monitor"] and worker["command"][1] in get_command(app).commands  # type: ignore[attr-defined]
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "ports" not in worker  # workers serve no API


def test_systemd_unit_runs_a_real_command_as_its_own_user() -> None:
    import configparser

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((ROOT / "deploy/monitor.service").read_text())
    service = unit["Service"]
    command = service["ExecStart"].split()
    assert command[0].endswith("/monitor") and command[1] in get_command(app).commands  # type: ignore[attr-defined]
    assert service["User"] == "monitor" and service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM" and "HUP" in service["ExecReload"]
