"""The ``[celery]`` table: where a daemon with ``executor = "celery"`` sends its jobs.

A leaf module (pydantic only), so that :mod:`hotfolder.config` can use it
without importing Celery: the default executor never loads Celery at all.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")
_BACKEND_SCHEMES = ("redis", "rediss")


class CelerySettings(BaseModel):
    """Broker, result backend, queue and the limits of the Celery executor.

    Every worker (``hotfolder worker``) and every daemon of one installation
    must use the same broker, result backend and queue.
    """

    model_config = ConfigDict(extra="forbid")

    #: Where jobs are queued: Redis (``redis://``, ``rediss://``) or RabbitMQ
    #: (``amqp://``). May hold a password, so it is never shown in reprs.
    broker: str = Field(default="redis://127.0.0.1:6379/0", repr=False)
    #: Where workers put results; Redis only (the daemon listens for them there).
    #: Empty: the broker's URL when the broker is Redis.
    result_backend: str = Field(default="", repr=False)
    #: The queue jobs go to; workers of another installation use another name.
    queue: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")] = "hotfolder"
    #: Jobs handed to Celery at a time; the rest wait in the daemon's fair queue.
    #: Set it to the worker processes of all workers together (or a few more).
    max_in_flight: Annotated[int, Field(ge=1, le=10000)] = 8
    #: Seconds after which the broker gives a job whose worker never acknowledged it
    #: to another worker. Must exceed every folder's ``timeout``: a job still running
    #: then would run twice (harmless for the outputs, but wasted work).
    visibility_timeout: Annotated[float, Field(gt=0)] = 3600.0
    #: How often (seconds) workers look for jobs of lost workers to hand out again.
    restore_interval: Annotated[float, Field(gt=0)] = 10.0
    #: A job whose worker was lost this many times fails with ``worker_crashed``
    #: (a file that kills every worker must not go round forever).
    max_deliveries: Annotated[int, Field(ge=1, le=100)] = 3
    #: Seconds results stay in the backend.
    result_expires: Annotated[float, Field(gt=0)] = 86400.0
    #: A worker not heard from for this many seconds (no heartbeat, no event) is
    #: declared lost, and the jobs it held are sent again at once, as new attempts.
    worker_lost_after: Annotated[float, Field(ge=3, le=3600)] = 15.0

    @field_validator("broker")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in _BROKER_SCHEMES:
            raise ValueError(
                f"must be a Redis (redis://HOST:PORT/DB) or RabbitMQ (amqp://USER@HOST/VHOST) "
                f"URL, not {scheme or 'no'} scheme"
            )
        return value

    @field_validator("result_backend")
    @classmethod
    def _backend_scheme(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in _BACKEND_SCHEMES:
            raise ValueError("must be a Redis URL (redis://HOST:PORT/DB or rediss://…)")
        return value

    @model_validator(mode="after")
    def _backend_given_for_rabbitmq(self) -> CelerySettings:
        if not self.result_backend and urlsplit(self.broker).scheme not in _BACKEND_SCHEMES:
            raise ValueError(
                "result_backend: a RabbitMQ broker needs a Redis result backend "
                "(result_backend = 'redis://HOST:6379/1')"
            )
        return self

    @property
    def heartbeat_interval(self) -> int:
        """Whole seconds between a worker's heartbeats; several fit into ``worker_lost_after``."""
        return max(1, min(2, round(self.worker_lost_after / 5)))

    @property
    def backend_url(self) -> str:
        """The result backend's URL (the broker's when none is set)."""
        return self.result_backend or self.broker
