"""Connecting to Ray: a local runtime on this machine, or an existing cluster.

Nothing here schedules, retries or stores anything: that is Ray's job. This module only
chooses how ``ray.init`` is called, once, for tuning and for the reruns alike.

Where Ray runs:

* ``address`` (``HOST:PORT`` or ``auto``) or a ``RAY_ADDRESS`` in the environment (as set
  inside ``ray job submit``): join that cluster. Its nodes declared their CPUs and GPUs
  when they started, so no counts are passed.
* otherwise: start a local runtime for this process, with ``num_cpus`` (default: all
  cores). The dashboard is off (``include_dashboard=False``); the minimal dashboard
  process Ray still starts is bound to 127.0.0.1 (``dashboard_host``). Ray 2.60 reports
  the machine's address as the node IP and its gRPC servers (GCS, raylet, workers) listen
  on every interface whatever it is told (it rewrites ``_node_ip_address="127.0.0.1"`` to
  that address itself, so this module no longer passes it); what guards those ports is
  token authentication, which Ray 2.60 turns on by default for a runtime ``ray.init``
  starts.

Authentication (Ray 2.60): every process of a cluster must agree on ``RAY_AUTH_MODE``.
``ray start --head`` enables ``token`` when a token exists (``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), but ``ray start --address=...`` and
``ray.init(address="HOST:PORT")`` do not, and then fail with ``InvalidAuthToken``. So when
joining, with ``RAY_AUTH_MODE`` unset and a token available, :func:`connect` sets
``RAY_AUTH_MODE=token`` for this process (a token-mode client also joins a cluster whose
auth is disabled). Set ``RAY_AUTH_MODE`` yourself to override; ``scripts/start_local_cluster.sh``
starts every node with ``RAY_AUTH_MODE=token``.

Environment for trials: variables named ``SPIKESORT_TUNE_*`` (e.g. the fault-injection
hook of :mod:`tuning.search.trainable`) are passed to Ray workers on a joined cluster through
``runtime_env={"env_vars": ...}``; a local runtime's workers inherit this environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import ray

LOCAL_HOST = "127.0.0.1"
AUTH_MODE_ENV = "RAY_AUTH_MODE"
FORWARDED_ENV_PREFIX = "SPIKESORT_TUNE_"


def connect(address: str | None = None, num_cpus: int | None = None,
            num_gpus: int | None = None, log_to_driver: bool = False) -> bool:
    """Start or join Ray unless this process is already connected.

    ``address``: ``HOST:PORT`` or ``auto`` joins an existing cluster (whose nodes already
    declared their CPUs and GPUs, so no counts are passed); so does a ``RAY_ADDRESS`` in
    the environment. Otherwise a local runtime starts with ``num_cpus`` (default: all
    cores) and ``num_gpus`` (default: Ray's detection). ``log_to_driver``: print the
    workers' output here too (``--verbose``); by default it stays in Ray's session logs,
    so the console holds only what the tool prints (see :mod:`tuning.search.console`). Returns
    True when this call connected, so the caller knows it should disconnect.
    """
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        use_token_auth_if_available()
        forwarded = forwarded_env()
        ray.init(address=address, log_to_driver=log_to_driver,
                 runtime_env={"env_vars": forwarded} if forwarded else None)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus, include_dashboard=False,
                 dashboard_host=LOCAL_HOST, log_to_driver=log_to_driver)
    return True


def auth_token_available() -> bool:
    """Whether a Ray auth token is where Ray looks for one (env, token path, home)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(path).expanduser().is_file() if path else (Path.home() / ".ray" / "auth_token").is_file()


def use_token_auth_if_available() -> str | None:
    """Set ``RAY_AUTH_MODE=token`` before joining, unless the user chose a mode.

    Returns the mode this process will use (None: Ray's default for an explicit address,
    which is no authentication).
    """
    if AUTH_MODE_ENV not in os.environ and auth_token_available():
        os.environ[AUTH_MODE_ENV] = "token"
        # Ray's core reads the mode into its config when ray is imported; refresh it, as
        # Ray itself does when it turns token mode on for ``ray.init(address="auto")``.
        from ray._raylet import Config

        Config.initialize("")
    return os.environ.get(AUTH_MODE_ENV)


def forwarded_env() -> dict[str, str]:
    """This process's ``SPIKESORT_TUNE_*`` variables, for the workers of a joined cluster."""
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}


def available(resource: str) -> float:
    """Total amount of ``resource`` ("CPU", "GPU") in the connected cluster."""
    return float(ray.cluster_resources().get(resource, 0.0))
