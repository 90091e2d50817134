"""Static checks of the Dockerfile and .dockerignore.

No Docker engine exists on the machines that run these tests, so the image is never built
here: these tests read the files and hold them to the rules the chart relies on (lock-file
install, non-root user, pinned bases, every workspace member present, nothing the build needs
excluded). They do not prove that the image builds.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from ark_mesh.devmesh import MODULES

from .conftest import REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    arguments: str


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stage = ""
    parsed = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.search(r"\bAS\s+(\S+)", arguments, re.IGNORECASE)
            stage = match.group(1) if match else arguments
        parsed.append(Instruction(stage, keyword, arguments.strip()))
    return parsed


def build_args() -> dict[str, str]:
    return {
        name: value
        for i in instructions(DOCKERFILE.read_text())
        if i.keyword == "ARG" and "=" in i.arguments
        for name, value in [i.arguments.split("=", 1)]
    }


def stage_of(stage: str) -> list[Instruction]:
    found = [i for i in instructions(DOCKERFILE.read_text()) if i.stage == stage]
    assert found, f"no stage {stage}"
    return found


def final_stage() -> str:
    return [i for i in instructions(DOCKERFILE.read_text()) if i.keyword == "FROM"][-1].stage


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        regex = _glob_regex(body)
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax, without character classes (this repository uses none): ``*``
    and ``?`` stay within one path segment, a ``**`` segment spans any number of them."""
    parts = pattern.split("/")
    regex = ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            if index == 0:
                regex += ".*" if last else "(?:.*/)?"
            else:
                regex += "(?:/.*)?" if last else "/(?:.*/)?"
            continue
        if index > 0 and parts[index - 1] != "**":
            regex += "/"
        regex += "".join(
            "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in part
        )
    return re.compile(regex)


def dockerignore() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def workspace_members() -> list[Path]:
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    members = []
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        members += [p.parent for p in sorted(REPO.glob(f"{pattern}/pyproject.toml"))]
    return members


def test_base_images_are_pinned() -> None:
    args = build_args()
    for instruction in instructions(DOCKERFILE.read_text()):
        if instruction.keyword != "FROM":
            continue
        image = instruction.arguments.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        if image in {i.stage for i in instructions(DOCKERFILE.read_text())}:
            continue  # a previous stage
        name, _, tag = image.rpartition(":")
        assert name, f"{image}: base images need an explicit tag"
        assert tag, f"{image}: base images need an explicit tag"
        assert "/" not in tag, f"{image}: base images need an explicit tag"
        assert tag != "latest", f"{image}: 'latest' is not a pin"


def test_dependencies_come_from_the_lock_file_without_dev_tools() -> None:
    runs = [i.arguments for i in stage_of("builder") if i.keyword == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs, "the builder installs with uv sync"
    for command in syncs:
        assert "--frozen" in command, command
        assert "--no-dev" in command, command
    assert not [r for r in runs if re.search(r"\bpip install\b", r)], "no unlocked installs"


def installed_by(stage: str, tmp_path: Path) -> set[str]:
    """The distributions the last ``uv sync`` of ``stage`` installs, from that exact command run
    with ``--dry-run`` against an empty environment (no Docker needed: same lock, same flags)."""
    runs = [i.arguments for i in stage_of(stage) if i.keyword == "RUN" and "uv sync" in i.arguments]
    assert runs, f"{stage} has no uv sync"
    words = shlex.split(runs[-1])
    command = words[words.index("uv") :]
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")}
    result = subprocess.run(
        [*command, "--dry-run"], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    names = re.findall(r"^ \+ ([A-Za-z0-9._-]+)==", result.stderr + result.stdout, re.MULTILINE)
    assert names, result.stderr
    return {name.lower().replace("_", "-") for name in names}


def test_the_runtime_image_installs_the_services_and_no_test_code(tmp_path: Path) -> None:
    """What the chart runs: every service, and no pytest, K8s API emulator or fake model (they
    live in ark-mesh-testing) and no dev mesh or CLI."""
    installed = installed_by("builder", tmp_path)
    services = {f"ark-mesh-{p.name}" for p in (REPO / "services").iterdir() if p.is_dir()}
    assert len(services) >= 6
    assert services <= installed, services - installed
    assert not {n for n in installed if n.startswith("pytest")}, "pytest in the runtime image"
    assert "ark-mesh-testing" not in installed
    assert "ark-mesh-devmesh" not in installed


def test_the_dev_image_adds_the_fake_model_without_pytest(tmp_path: Path) -> None:
    """Tilt's image runs the chart's fake model (ark-mesh-testing) but still no test runner."""
    installed = installed_by("dev-builder", tmp_path)
    assert {"ark-mesh-testing", "ark-mesh-devmesh"} <= installed
    assert not {n for n in installed if n.startswith("pytest")}, "pytest in the dev image"


def test_every_workspace_member_is_in_the_dependency_layer() -> None:
    """The first `uv sync` only sees the pyproject files copied before it; a member missing
    there makes the frozen sync fail (or silently skip that member's dependencies)."""
    builder = stage_of("builder")
    first_sync = next(n for n, i in enumerate(builder) if "uv sync" in i.arguments)
    copied = {
        i.arguments.split()[0]
        for i in builder[:first_sync]
        if i.keyword == "COPY" and not i.arguments.startswith("--from")
    }
    for member in workspace_members():
        relative = (member / "pyproject.toml").relative_to(REPO).as_posix()
        assert relative in copied, f"{relative} is not copied before the first uv sync"


@pytest.mark.parametrize("stage", ["runtime", "dev"])
def test_images_run_as_a_non_root_user(stage: str) -> None:
    users = [i.arguments for i in stage_of(stage) if i.keyword == "USER"]
    assert users, f"{stage} sets no USER and would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, users[-1]
    assert user == "10001", "the chart's podSecurityContext runs as 10001"


def test_the_default_target_is_the_runtime_image() -> None:
    assert final_stage() == "runtime", "`docker build` without --target must give the runtime"
    runtime = stage_of("runtime")
    assert not [i for i in runtime if "dev-restart" in i.arguments], "dev tooling stays in dev"
    copies = [i.arguments for i in runtime if i.keyword == "COPY"]
    assert not [c for c in copies if "--chown" in c], "runtime code stays owned by root"


def test_the_venv_is_on_path_for_python_dash_m() -> None:
    env = " ".join(i.arguments for i in stage_of("base") if i.keyword == "ENV")
    assert "PATH=/app/.venv/bin:$PATH" in env


def test_the_modules_the_chart_runs_exist() -> None:
    for module in [*MODULES.values(), "ark_mesh.testing.fake_llm"]:
        assert importlib.util.find_spec(f"{module}.__main__"), f"python -m {module} cannot run"


def test_build_context_keeps_what_the_build_copies() -> None:
    patterns = dockerignore()
    for instruction in instructions(DOCKERFILE.read_text()):
        if instruction.keyword != "COPY" or "--from" in instruction.arguments:
            continue
        sources = [a for a in instruction.arguments.split() if not a.startswith("--")][:-1]
        for source in sources:
            path = source.rstrip("/")
            assert (REPO / path).exists(), f"COPY {source}: not in the repository"
            assert not ignored(path, patterns), f"COPY {source}: excluded by .dockerignore"
            for member in workspace_members():
                sample = (member / "src").relative_to(REPO).as_posix()
                if sample.startswith(path + "/"):
                    assert not ignored(sample, patterns), f"{sample} excluded"


def test_build_context_leaves_out_tests_caches_and_the_local_venv() -> None:
    patterns = dockerignore()
    for path in [
        ".venv/bin/python",
        ".git/HEAD",
        ".tmp/deploy-tools/x",
        "libs/bus/tests/test_topology.py",
        "services/controller/src/ark_mesh/controller/__pycache__/x.pyc",
        "tests/e2e/conftest.py",
        "helm/ark-mesh/values.yaml",
    ]:
        assert ignored(path, patterns), f"{path} would be sent to the build"
    for path in ["uv.lock", "libs/bus/src/ark_mesh/bus/config.py", "tilt/dev-restart.sh"]:
        assert not ignored(path, patterns), f"{path} is needed by the build"


def test_the_dockerignore_matcher_follows_docker_rules() -> None:
    assert ignored("a/b/c", ["**"])
    assert not ignored("a/b/c", ["**", "!a/"])
    assert ignored("a/tests/x", ["**", "!a/", "**/tests/"])
    assert not ignored("a/testing/x", ["**", "!a/", "**/tests/"])
    assert ignored("x.pyc", ["*.pyc"])
    assert not ignored("a/x.pyc", ["*.pyc"]), "a pattern without ** matches from the root only"
