"""pytest plugin that exposes ark-mesh's real test infrastructure as fixtures.

Registered through the ``pytest11`` entry point of ``ark-mesh-testing``, so any test in the
workspace (and any downstream project that installs the package) gets the fixtures without a
conftest import. Each area keeps its fixtures in its own module; this file only gathers them.
"""

from ark_mesh.testing.kube_fixtures import *  # noqa: F403
from ark_mesh.testing.model_fixtures import *  # noqa: F403
from ark_mesh.testing.nats_fixtures import *  # noqa: F403
