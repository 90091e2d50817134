"""Write the broker's OpenAPI document: ``python -m ark_mesh.broker.export FILE``.

``make schemas`` runs it into ``proto-schemas/openapi.json``; a test compares that file with
what the code generates, so a route or body changed without regenerating fails CI.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ark_mesh.broker.api import OPERATIONS
from ark_mesh.broker.openapi import openapi_text

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the broker's OpenAPI document.")
    parser.add_argument("output", type=Path, help="e.g. proto-schemas/openapi.json")
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(openapi_text(OPERATIONS))
    print(f"wrote {args.output} ({len(OPERATIONS)} operations)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
