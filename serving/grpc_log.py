"""Keep gRPC core's own log lines out of the server's JSON log (import before grpc).

gRPC core writes lines such as ``I1202 … ssl_transport_security.cc:2563] Handshake failed`` to
stderr, where ``seqboltz serve`` writes one JSON object per line. It reads ``GRPC_VERBOSITY``
once, when grpc is imported, so :func:`quiet_grpc_core` must run before that: the ``seqboltz``
command calls it before it imports :mod:`serving.server`. This module imports no grpc.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping, Sequence

__all__ = ["GRPC_LOG_SET_BY_US", "quiet_grpc_core"]

#: whether :func:`quiet_grpc_core` silenced gRPC core in this process
GRPC_LOG_SET_BY_US = False
_ON = {"1", "true", "yes", "on"}


def quiet_grpc_core(argv: Sequence[str], environ: MutableMapping[str, str] | None = None) -> bool:
    """Set ``GRPC_VERBOSITY=NONE`` unless gRPC logging is asked for; returns whether it did.

    Asked for: ``--grpc-log`` in ``argv``, ``SEQBOLTZ_GRPC_LOG`` set to a true value, or a
    ``GRPC_VERBOSITY`` the user already set (honoured as it is). Does nothing once grpc is
    imported (too late to matter).
    """
    global GRPC_LOG_SET_BY_US
    env = os.environ if environ is None else environ
    wanted = "--grpc-log" in argv or env.get("SEQBOLTZ_GRPC_LOG", "").strip().lower() in _ON
    if wanted or "GRPC_VERBOSITY" in env or "grpc" in sys.modules:
        return False
    env["GRPC_VERBOSITY"] = "NONE"
    GRPC_LOG_SET_BY_US = True
    return True
