"""FastAPI integration: purge cachegate entries after a successful write.

Environment read:

    CACHEGATE_WEBHOOK_URL     e.g. "http://cachegate:8080/_cachegate/invalidate"; empty = send nothing
    CACHEGATE_WEBHOOK_SECRET  the shared secret (a comma-separated list while rotating)
    CACHEGATE_WEBHOOK_TIMEOUT seconds, default 2.0

Two ways to send, through the ``Invalidator`` dependency:

    await inv.purge({...})   sends before the response goes out (recommended: once the client
                             sees the write acknowledged, no cached read is older than it)
    inv.purge_later({...})   a background task, run after the response is sent; cheaper for the
                             request, but a read racing the response may still see the old entry

Both only ever run when the endpoint returns normally: call them after the commit.
"""

import asyncio
import logging
import os
import sys

from fastapi import BackgroundTasks

# The signer lives one folder up and has no FastAPI dependency; it is found by path so this
# folder can be copied into a project as is.
_HERE = os.path.dirname(os.path.abspath(__file__))
_PARENT = os.path.dirname(_HERE)
if _PARENT not in sys.path:
    sys.path.insert(0, _PARENT)

from cachegate_client import CachegateError, send_invalidation  # noqa: E402

logger = logging.getLogger("cachegate")

__all__ = ["Invalidator", "get_invalidator", "send_now", "resource_payload"]


def resource_payload(resource, pk=None, tenant=None):
    """The usual purge body: the resource's tag and, given a pk, the item's own tag."""
    tags = [resource] if pk is None else [resource, "%s:%s" % (resource, pk)]
    payload = {"tags": tags}
    # No tenant means the shared scope; str(None) would name a tenant called "None".
    if tenant is not None:
        payload["tenant"] = str(tenant)
    return payload


def send_now(payload, raise_errors=False):
    """Sends one purge request, blocking; failures are logged unless ``raise_errors``."""
    url = os.environ.get("CACHEGATE_WEBHOOK_URL", "")
    if not url:
        return
    secret = os.environ.get("CACHEGATE_WEBHOOK_SECRET", "")
    timeout = float(os.environ.get("CACHEGATE_WEBHOOK_TIMEOUT", "2.0"))
    try:
        send_invalidation(url, secret, payload, timeout=timeout)
    except (CachegateError, ValueError, TypeError) as e:
        if raise_errors:
            raise
        # The message carries the proxy's answer, never the secret.
        logger.error("cachegate invalidation failed for tags %s: %s", payload.get("tags"), e)


class Invalidator:
    """Per-request helper handed out by ``get_invalidator``."""

    def __init__(self, background_tasks: BackgroundTasks):
        self._background = background_tasks

    async def purge(self, payload, raise_errors=False):
        """Sends now, off the event loop, and returns once the proxy has answered."""
        await asyncio.to_thread(send_now, payload, raise_errors)

    def purge_later(self, payload):
        """Queues the purge to run after the response is sent."""
        self._background.add_task(send_now, payload)


def get_invalidator(background_tasks: BackgroundTasks) -> Invalidator:
    """FastAPI dependency: ``inv: Invalidator = Depends(get_invalidator)``."""
    return Invalidator(background_tasks)
