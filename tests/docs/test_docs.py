"""The design documents cannot rot: their code blocks run, and their tables name what exists.

``docs/architecture.md``, ``docs/subjects.md`` and ``docs/operations.md`` are where a newcomer
learns the mesh. Every fenced block there is checked by its language:

* ``python``: run as a program against one local mesh (the custom consumer must print a real
  query's tokens and its final phase);
* ``sh``: run with bash, ``set -euo pipefail``, with the mesh's addresses in the environment;
* ``mermaid``: a sequence diagram whose participants are components and streams that exist;
* ``yaml``: Helm values, rendered with the real helm by ``tests/deploy/test_docs_values.py``;
* ``text``: prose in a box (the subject grammar), checked by the coverage test below.

A block in any other language fails the test: a new kind of block needs a new check first.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from ark_mesh.contracts import MESSAGE_TYPES, subjects
from ark_mesh.devmesh import MODULES, LocalMesh

ROOT = Path(__file__).resolve().parents[2]
DOCS = {name: ROOT / "docs" / name for name in ("architecture.md", "subjects.md", "operations.md")}
CHECKED_LANGUAGES = {"python", "sh", "mermaid", "yaml", "text"}
FENCE = re.compile(r"^```([a-z]*)[^\n]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(language: str | None = None) -> list[tuple[str, int, str, str]]:
    """``(doc, index, language, code)`` of every fenced block, optionally of one language."""
    found = []
    for name, path in DOCS.items():
        for index, match in enumerate(FENCE.finditer(path.read_text())):
            if language is None or match.group(1) == language:
                found.append((name, index, match.group(1), match.group(2)))
    return found


def block_id(block: tuple[str, int, str, str]) -> str:
    return f"{block[0]}#{block[1]}"


def test_every_block_has_a_check() -> None:
    unchecked = [block_id(b) for b in blocks() if b[2] not in CHECKED_LANGUAGES]
    assert not unchecked, (
        f"blocks without a check (give them a language this test runs): {unchecked}"
    )
    for language in ("python", "sh", "mermaid", "yaml"):
        assert blocks(language), f"no {language} block left: drop its check or restore one"


def test_subjects_page_names_every_stream_subject_and_message() -> None:
    page = DOCS["subjects.md"].read_text()
    missing = [
        *(s for s in subjects.STREAM_SUBJECTS if f"`{s}`" not in page),
        *(
            b
            for b in (
                subjects.QUERIES_BUCKET,
                subjects.CANCEL_BUCKET,
                subjects.RUNS_BUCKET,
                subjects.RESPONSES_BUCKET,
                subjects.SESSIONS_BUCKET,
            )
            if f"`{b}`" not in page
        ),
        *(
            f"{t.__name__} ({schema})"
            for schema, t in MESSAGE_TYPES.items()
            if f"`{schema}`" not in page
        ),
        *(f"{t.__name__}" for t in MESSAGE_TYPES.values() if f"`{t.__name__}`" not in page),
    ]
    # Every subject builder's shape, written with placeholders as the page does.
    shapes = {
        subjects.work_query("T"): "ark.<tenant>.work.query",
        subjects.work_responses("T"): "ark.<tenant>.work.responses",
        subjects.work_embeddings("T"): "ark.<tenant>.work.embeddings",
        subjects.query_chunk("T", "I"): "ark.<tenant>.query.<id>.chunk",
        subjects.query_event("T", "I"): "ark.<tenant>.query.<id>.event",
        subjects.query_status("T", "I"): "ark.<tenant>.query.<id>.status",
        subjects.query_result("T", "I"): "ark.<tenant>.query.<id>.result",
        subjects.query_cancel("T", "I"): "ark.<tenant>.query.<id>.cancel",
        subjects.memory("T", "C"): "ark.<tenant>.memory.<conversationId>",
        subjects.dlq("T", "K"): "ark.<tenant>.dlq.<kind>",
    }
    for built, documented in shapes.items():
        placeholder = built.replace("T", "<tenant>", 1)
        assert placeholder.split(".")[2] == documented.split(".")[2], (built, documented)
        if f"`{documented}`" not in page:
            missing.append(documented)
    assert not missing, f"docs/subjects.md does not name: {missing}"


PARTICIPANT = re.compile(r"^\s*participant\s+\S+\s+as\s+(.+)$", re.MULTILINE)


def test_diagrams_name_components_that_exist() -> None:
    components = set(MODULES)
    streams = set(subjects.STREAM_SUBJECTS)
    outside = {"kubectl", "ark CLI", "Kubernetes API", "model provider", "application"}
    diagrams = blocks("mermaid")
    for block in diagrams:
        code = block[3]
        assert code.lstrip().startswith("sequenceDiagram"), block_id(block)
        for label in PARTICIPANT.findall(code):
            parts = [p.strip() for p in re.split(r"/", label.replace(" replica", ""))]
            for part in parts:
                known = part in components or part in streams or part in outside
                assert known, f"{block_id(block)}: participant {part!r} is no component or stream"
    text = "\n".join(b[3] for b in diagrams)
    for service in ("controller", "query-reconciler", "status-sync", "broker"):
        assert service in text, f"no diagram shows {service}"


# -- blocks that run ---------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalMesh]:
    async with LocalMesh(
        preset="scale-flexible", workdir=tmp_path_factory.mktemp("docs-mesh"), streaming=True
    ) as started:
        yield started


def environment(mesh: LocalMesh) -> dict[str, str]:
    assert mesh.nats is not None
    broker = mesh.services["broker"].config["http"]["port"]
    return {
        **os.environ,
        "NATS_URL": mesh.nats.url,
        "KUBECONFIG": str(mesh.kubeconfig),
        "BROKER": f"http://127.0.0.1:{broker}",
        "TENANT": mesh.namespace,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


CONSUMER = next(b for b in blocks("python") if "chatcmpl-final" in b[3])


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_the_custom_consumer_prints_a_real_query(mesh: LocalMesh, tmp_path: Path) -> None:
    env = environment(mesh)
    program = tmp_path / "consumer.py"
    program.write_text(CONSUMER[3])
    consumer = await asyncio.create_subprocess_exec(
        sys.executable, str(program), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{env['BROKER']}/v1/queries?namespace={mesh.namespace}",
            json={"input": "echo from the docs", "target": {"type": "agent", "name": "assistant"}},
        )
        assert response.status in (200, 201, 202), await response.text()
        query_id = (await response.json())["id"]
    out, err = await asyncio.wait_for(consumer.communicate(), 90)
    assert consumer.returncode == 0, err.decode()
    printed = out.decode()
    assert f"[{query_id}] done" in printed, printed
    assert printed.split("\n[", 1)[0].strip(), "the consumer printed no tokens"


@pytest.mark.parametrize(
    "block", [b for b in blocks("python") if block_id(b) != block_id(CONSUMER)], ids=block_id
)
def test_other_python_blocks_run(block: tuple[str, int, str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", block[3]], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("block", blocks("sh"), ids=block_id)
def test_shell_blocks_run(
    block: tuple[str, int, str, str], mesh: LocalMesh, tmp_path: Path
) -> None:
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + block[3]],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=environment(mesh),
    )
    assert result.returncode == 0, f"{block_id(block)}:\n{result.stdout}\n{result.stderr}"
