"""The dev mesh as a package: its CRDs, no pytest at run time, the CLI's contract without a mesh."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from ark_mesh.cli.errors import Exit
from ark_mesh.cli.output import Ending
from ark_mesh.devmesh import CRDS, MODULES, PRESETS

from .conftest import cli

REPO = Path(__file__).resolve().parents[3]


def test_the_packaged_crds_are_the_charts() -> None:
    """`make schemas` writes both copies; a hand edit of one shows up here."""
    chart = {p.name: p.read_text() for p in (REPO / "helm" / "ark-mesh" / "crds").glob("*.yaml")}
    packaged = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert chart, "the chart has no CRDs"
    assert sorted(packaged) == sorted(chart), "run `make schemas`"
    for name, text in chart.items():
        assert packaged[name] == text, f"{name} differs from the chart's: run `make schemas`"


def test_the_packaged_presets_are_the_charts() -> None:
    """One table for both: the chart reads helm/ark-mesh/presets.yaml, the dev mesh its copy."""
    chart = (REPO / "helm" / "ark-mesh" / "presets.yaml").read_text()
    packaged = (resources.files("ark_mesh.devmesh") / "presets.yaml").read_text()
    assert packaged == chart, "run `make schemas` to copy helm/ark-mesh/presets.yaml"
    assert set(PRESETS) == {"simple", "scale-flexible", "scale-strict"}
    assert PRESETS["simple"]["services"] == ("controller",)
    assert PRESETS["scale-strict"]["services"] == tuple(MODULES)


def test_the_mesh_and_the_cli_run_without_importing_pytest() -> None:
    modules = [
        "ark_mesh.testing",
        "ark_mesh.testing.mesh",
        "ark_mesh.testing.nats_server",
        "ark_mesh.testing.processes",
        "ark_mesh.testing.fake_llm",
        "ark_mesh.testing.k8s.process",
        "ark_mesh.devmesh",
        "ark_mesh.devmesh.mesh",
        "ark_mesh.cli",
        "ark_mesh.cli.dev",
        "ark_mesh.cli.query",
        "ark_mesh.cli.bus",
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest'))\n"
        "assert not leaked, leaked\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_old_import_path_still_gives_the_local_mesh() -> None:
    from ark_mesh.devmesh import LocalMesh
    from ark_mesh.testing import mesh as old

    assert old.LocalMesh is LocalMesh
    mesh = old.LocalMesh(preset="simple", workdir=Path("w"))
    assert mesh.kubeconfig == Path("w") / "kubeconfig"
    assert mesh.kube is None
    assert mesh.services == {}


def test_help_lists_every_command_and_the_exit_codes(tmp_path: Path) -> None:
    result = cli(tmp_path, "--help")
    assert result.returncode == 0
    for command in ("dev", "query", "get", "list", "cancel", "tail", "dlq"):
        assert f"    {command} " in result.stdout, command
    for code in Exit:
        assert f"\n{int(code):>3}  " in result.stdout, f"exit code {code.name} is not documented"


def test_invalid_arguments_exit_2(tmp_path: Path) -> None:
    result = cli(tmp_path, "query", "hi")  # no target
    assert result.returncode == Exit.USAGE == 2
    assert "one of the arguments --agent --team --model --tool is required" in result.stderr


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (["query", "--agent", "assistant", "hi"], "no kubernetes to talk to"),
        (["query", "--via", "broker", "--agent", "assistant", "hi"], "no broker to talk to"),
        (["tail", "ark.default.>"], "no nats to talk to"),
        (["dlq"], "no nats to talk to"),
    ],
)
def test_without_a_mesh_commands_exit_5_and_say_what_is_missing(
    tmp_path: Path, args: list[str], missing: str
) -> None:
    result = cli(tmp_path, *args)
    assert result.returncode == Exit.UNREACHABLE == 5
    assert missing in result.stderr
    assert "ark-mesh dev" in result.stderr


def test_an_unreachable_broker_exits_5_naming_it(tmp_path: Path) -> None:
    from ark_mesh.testing.nats_server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = cli(tmp_path, "list", "--broker-url", url)
    assert result.returncode == 5
    assert f"the broker at {url} did not answer" in result.stderr


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ({"phase": "done"}, Exit.OK),
        ({"phase": "error", "conditions": [{"reason": "QueryErrored"}]}, Exit.QUERY_ERROR),
        ({"phase": "error", "conditions": [{"reason": "TimedOutInExecution"}]}, Exit.TIMED_OUT),
        ({"phase": "error", "conditions": [{"reason": "TimedOutInQueue"}]}, Exit.TIMED_OUT),
        ({"phase": "canceled"}, Exit.CANCELED),
        ({"phase": "running"}, Exit.TIMED_OUT),
        (None, Exit.TIMED_OUT),
    ],
)
def test_the_exit_code_follows_the_phase(status: dict[str, object] | None, code: Exit) -> None:
    assert Ending(status, 1.0, streamed=True).exit_code is code
