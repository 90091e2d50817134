"""The resolver talks to the world only through its ports: it never imports the bus, the kube
adapter, the test infrastructure, nats or kubernetes_asyncio. The rule lives in the workspace's
``.importlinter``; these tests run import-linter on it and prove the check can fail."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

WORKSPACE = next(p for p in Path(__file__).resolve().parents if (p / ".importlinter").is_file())
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACT = "resolver-through-ports"


def lint(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *arguments],
        cwd=WORKSPACE,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_contract_forbids_every_adapter() -> None:
    config = configparser.ConfigParser()
    config.read(WORKSPACE / ".importlinter")
    section = config[f"importlinter:contract:{CONTRACT}"]
    assert section["type"] == "forbidden"
    assert section["source_modules"].split() == ["ark_mesh.resolver"]
    assert set(section["forbidden_modules"].split()) >= {
        "ark_mesh.bus",
        "ark_mesh.kube",
        "ark_mesh.testing",
        "nats",
        "kubernetes_asyncio",
    }


def test_resolver_keeps_its_import_contract() -> None:
    result = lint("--contract", CONTRACT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout


def test_the_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    """Same machinery, a contract the resolver necessarily breaks: it must be reported broken."""
    config = tmp_path / "importlinter.ini"
    config.write_text(
        "[importlinter]\nroot_packages =\n    ark_mesh\ninclude_external_packages = True\n\n"
        "[importlinter:contract:probe]\nname = probe\ntype = forbidden\n"
        "source_modules =\n    ark_mesh.resolver\nforbidden_modules =\n    openai\n"
    )
    result = lint("--config", str(config))
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "ark_mesh.resolver.openai_client -> openai" in result.stdout


def test_importing_the_resolver_loads_no_adapter() -> None:
    code = (
        "import sys, ark_mesh.resolver;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('nats','kubernetes_asyncio')"
        " or m.startswith(('ark_mesh.bus','ark_mesh.kube','ark_mesh.testing'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, (
        f"importing ark_mesh.resolver loaded: {result.stdout}{result.stderr}"
    )
