"""A leader-election candidate process for the fail-over test.

Prints ``leading <identity>`` once it holds the Lease and keeps renewing; prints
``lost <identity>`` and exits 3 if it loses the Lease. Killed with SIGKILL by the test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ark_mesh.kube import KubeClient, LeaderElectionConfig, LeaderElector, LeadershipLostError


async def main(args: argparse.Namespace) -> int:
    client = await KubeClient.from_kubeconfig(args.kubeconfig)
    async with client:
        elector = LeaderElector(
            client,
            LeaderElectionConfig(
                namespace="default",
                name=args.lease,
                identity=args.identity,
                lease_duration=args.lease_duration,
                renew_deadline=args.renew_deadline,
                retry_period=args.retry_period,
            ),
        )
        await elector.acquire()
        print(f"leading {args.identity}", flush=True)
        try:
            await elector.hold()
        except LeadershipLostError:
            print(f"lost {args.identity}", flush=True)
            return 3
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--lease", default="ark-mesh-controller")
    parser.add_argument("--lease-duration", type=float, default=2.0)
    parser.add_argument("--renew-deadline", type=float, default=1.5)
    parser.add_argument("--retry-period", type=float, default=0.3)
    sys.exit(asyncio.run(main(parser.parse_args())))
