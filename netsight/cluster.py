"""Joining a Ray cluster (or starting a local Ray instance): what every part of netsight that sends work to Ray
shares - the suite runner's Ray backend (`suites/backends/ray.py`) and the microscope's dataset pass
(`ops/dataset_pass.py`, `dataset_pass_on_ray`). Ray is an optional extra: `import_ray` names the install."""

from __future__ import annotations

import logging
import socket
from typing import Optional

from .errors import NetsightError

CONNECT_TIMEOUT_S = 5.0


def import_ray():
    try:
        import ray
    except ImportError:
        raise NetsightError(
            "--backend ray: Ray is not installed here; pip install 'netsight[ray]' (on the driver and on every node)"
        ) from None
    return ray


def _parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise NetsightError(f"--address {address!r}: expected auto or HOST:PORT of a Ray head node (e.g. 10.0.0.5:6379)")
    return host.strip("[]"), int(port)


def connect(ray, address: Optional[str]) -> bool:
    """Join the cluster at `address`, or start a local Ray instance when it is None; a process
    already connected (a notebook that called `ray.init`) keeps its connection. Returns True
    when this call connected, so the caller disconnects (and stops a local instance) at the end."""
    if ray.is_initialized():
        return False
    quiet = dict(logging_level=logging.WARNING, log_to_driver=True)
    if address is None:  # "local": a new instance even where a cluster runs on this machine (ray.init() would join it)
        ray.init(address="local", include_dashboard=False, **quiet)
        return True
    if address != "auto":
        host, port = _parse_address(address)
        try:  # Ray itself waits minutes for an address nobody answers at
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__.replace("Error", " error").lower()
            raise NetsightError(
                f"--address {address}: cannot reach a Ray head node there ({reason}); start one with "
                f"`ray start --head` or check the host and port"
            ) from None
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, ray.exceptions.AuthenticationError) as exc:
        hint = (
            ""
            if address == "auto"
            else "; if the cluster uses Ray's token authentication, set RAY_AUTH_MODE=token "
            "and its token (RAY_AUTH_TOKEN or ~/.ray/auth_token) here too"
        )
        raise NetsightError(f"--address {address}: {' '.join(str(exc).split())}{hint}") from None
    return True
