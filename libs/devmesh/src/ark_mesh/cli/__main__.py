"""``python -m ark_mesh.cli`` is ``ark-mesh``."""

from ark_mesh.cli import main

raise SystemExit(main())
