"""Connecting to Ray (a private local instance or a running cluster) and Ray task options."""

from __future__ import annotations

import contextlib
import os
import socket

__all__ = ["INSTALL_HINT", "require_ray", "session", "task_options", "set_threads",
           "check_retries", "where"]

INSTALL_HINT = 'install the optional Ray extra: pip install "flygnn[ray]"'


def require_ray():
    """Import Ray or raise an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ImportError(f"distributed ensembles need Ray, which is not installed; "
                          f"{INSTALL_HINT}") from err
    return ray


@contextlib.contextmanager
def session(address: str | None, num_cpus: int | None, init_kwargs: dict | None):
    """Use a running Ray connection, or start one (and stop it on exit).

    ``address=None`` starts a new local Ray instance (``address="local"``, so a cluster that
    happens to run on this machine is not joined by accident); otherwise ``ray.init(address)``.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs = {"log_to_driver": False, **(init_kwargs or {})}
    if address is None:
        kwargs = {"include_dashboard": False, **kwargs}
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    else:
        ray.init(address=str(address), **kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()


def task_options(ray, fn, num_cpus: float, num_gpus: float, **extra):
    return ray.remote(fn).options(num_cpus=num_cpus, num_gpus=num_gpus, **extra)


def set_threads(num_cpus: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(num_cpus)))


def check_retries(max_retries: int, num_cpus_per_member: int) -> None:
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    if num_cpus_per_member < 1:
        raise ValueError(f"num_cpus_per_member must be >= 1, got {num_cpus_per_member}")


def where() -> dict:
    import ray

    return {"pid": os.getpid(), "host": socket.gethostname(),
            "node": ray.get_runtime_context().get_node_id()}


