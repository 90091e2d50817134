"""Leader election on a ``coordination.k8s.io/v1`` Lease, so only one controller replica acts.

The protocol is client-go's, so ark-mesh replicas and standard tools read the same Lease:

* the holder renews ``spec.renewTime`` every ``retry_period``;
* a candidate may take the Lease when it is free (no holder), or when the holder's record
  has not changed for ``leaseDurationSeconds`` *as measured on the candidate's own clock*
  since it first saw that record — comparing against ``renewTime`` would trust the other
  machine's clock;
* every write is a PUT guarded by ``resourceVersion``, so two candidates racing for an
  expired Lease cannot both win: the second gets a 409 and stays a follower;
* a holder that cannot renew for ``renew_deadline`` considers itself deposed and stops
  working *before* the Lease can expire (``renew_deadline < lease_duration``), so two
  leaders never act at the same time.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from ark_mesh.kube.client import LEASES, KubeClient
from ark_mesh.kube.errors import AlreadyExistsError, ConflictError, KubeError, NotFoundError
from ark_mesh.telemetry import get_logger

__all__ = ["LeaderElectionConfig", "LeaderElector", "LeadershipLostError"]

log = get_logger(__name__)

T = TypeVar("T")
_JITTER = 1.2  # client-go's JitterFactor for candidates' retries


class LeadershipLostError(Exception):
    """This replica stopped being the leader (it could not renew, or was replaced)."""


@dataclass(frozen=True, slots=True)
class LeaderElectionConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("a leader election identity must not be empty")
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if not self.renew_deadline > self.retry_period * _JITTER:
            raise ValueError(f"renew_deadline must be greater than retry_period * {_JITTER}")
        if self.retry_period <= 0:
            raise ValueError("retry_period must be positive")


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """One candidate. ``await run(work)``, or ``acquire()`` / ``hold()`` / ``release()``."""

    def __init__(
        self,
        client: KubeClient,
        config: LeaderElectionConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.config = config
        self._clock = clock
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._leading = False

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def observed_holder(self) -> str:
        return str((self._observed_spec or {}).get("holderIdentity") or "")

    def _observe(self, spec: dict[str, Any]) -> None:
        if spec != self._observed_spec:
            self._observed_spec = dict(spec)
            self._observed_at = self._clock()

    async def try_acquire_or_renew(self) -> bool:
        """One attempt to become (or stay) the holder; ``True`` if this replica holds it now."""
        cfg = self.config
        now = _micro_time(datetime.now(UTC))
        duration = math.ceil(cfg.lease_duration)
        try:
            lease = await self._client.get_object(LEASES, cfg.namespace, cfg.name)
        except NotFoundError:
            spec: dict[str, Any] = {
                "holderIdentity": cfg.identity,
                "leaseDurationSeconds": duration,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            }
            try:
                await self._client.create_object(
                    LEASES,
                    cfg.namespace,
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                        "spec": spec,
                    },
                )
            except AlreadyExistsError:
                return False
            self._observe(spec)
            return True

        spec = dict(lease.get("spec") or {})
        self._observe(spec)
        holder = str(spec.get("holderIdentity") or "")
        held_for = float(spec.get("leaseDurationSeconds") or duration)
        if holder and holder != cfg.identity and self._observed_at + held_for > self._clock():
            return False  # somebody else holds a lease that has not expired
        renewed = dict(spec)
        renewed.update(holderIdentity=cfg.identity, leaseDurationSeconds=duration, renewTime=now)
        if holder != cfg.identity:
            renewed["acquireTime"] = now
            renewed["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": cfg.name,
                "namespace": cfg.namespace,
                "resourceVersion": lease["metadata"]["resourceVersion"],
            },
            "spec": renewed,
        }
        try:
            await self._client.replace_object(LEASES, cfg.namespace, cfg.name, body)
        except ConflictError:
            return False  # another candidate wrote first; re-read next time
        self._observe(renewed)
        return True

    async def acquire(self) -> None:
        """Block until this replica holds the Lease."""
        while True:
            try:
                if await self.try_acquire_or_renew():
                    self._leading = True
                    log.info("became leader", lease=self.config.name, identity=self.config.identity)
                    return
            except KubeError as exc:
                log.warning("leader election attempt failed", error=exc.message)
            await asyncio.sleep(self.config.retry_period * random.uniform(1.0, _JITTER))

    async def hold(self) -> None:
        """Renew until leadership is lost, then raise :class:`LeadershipLostError`."""
        if not self._leading:
            raise LeadershipLostError("not the leader")
        last_renewal = self._clock()
        while True:
            await asyncio.sleep(self.config.retry_period)
            try:
                renewed = await self.try_acquire_or_renew()
            except KubeError as exc:
                log.warning("lease renewal failed", error=exc.message)
                renewed = False
            if renewed:
                last_renewal = self._clock()
                continue
            replaced = self.observed_holder not in ("", self.config.identity)
            if replaced or self._clock() - last_renewal >= self.config.renew_deadline:
                self._leading = False
                log.warning(
                    "lost leadership",
                    lease=self.config.name,
                    identity=self.config.identity,
                    holder=self.observed_holder,
                )
                raise LeadershipLostError(
                    f"{self.config.identity} lost lease {self.config.name} "
                    f"(holder now {self.observed_holder or 'nobody'})"
                )

    async def release(self) -> None:
        """Give the Lease up now (if held), so a follower need not wait for it to expire."""
        if not self._leading:
            return
        self._leading = False
        cfg = self.config
        try:
            lease = await self._client.get_object(LEASES, cfg.namespace, cfg.name)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != cfg.identity:
                return
            spec.update(
                holderIdentity="", leaseDurationSeconds=1, renewTime=_micro_time(datetime.now(UTC))
            )
            await self._client.replace_object(
                LEASES,
                cfg.namespace,
                cfg.name,
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": cfg.name,
                        "namespace": cfg.namespace,
                        "resourceVersion": lease["metadata"]["resourceVersion"],
                    },
                    "spec": spec,
                },
            )
        except KubeError as exc:
            log.warning("lease release failed", error=exc.message)

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Acquire, then run ``work`` while holding; cancel it and raise if leadership is lost.

        When ``work`` returns, the Lease is released and its result returned.
        """
        await self.acquire()
        work_task: asyncio.Future[T] = asyncio.ensure_future(work())
        hold_task: asyncio.Future[None] = asyncio.create_task(self.hold())
        pending: set[asyncio.Future[Any]] = {work_task, hold_task}
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not work_task.done():
                work_task.cancel()
            hold_task.cancel()
            await asyncio.gather(work_task, hold_task, return_exceptions=True)
        if work_task.cancelled() and hold_task.done() and not hold_task.cancelled():
            exc = hold_task.exception()
            raise exc if exc is not None else LeadershipLostError("hold ended")
        await self.release()
        return work_task.result()
