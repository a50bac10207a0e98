"""FastAPI integration: purge cachegate entries after a successful write.

Environment read:

    CACHEGATE_WEBHOOK_URL     e.g. "http://cachegate:8080/_cachegate/invalidate"; empty = send nothing
    CACHEGATE_WEBHOOK_SECRET  the shared secret (a comma-separated list while rotating)
    CACHEGATE_WEBHOOK_TIMEOUT seconds for the whole send, retries included, default 2.0
    CACHEGATE_WEBHOOK_RETRIES retries after a failure that may pass, default 3
    CACHEGATE_WEBHOOK_RAISE   "1"/"true"/"yes": raise on failure instead of logging it (the
                              default of ``raise_errors``), default false

A send that fails because the proxy is unreachable, slow, or answers 5xx or 429 is retried with
exponential backoff, signed anew each time, within the timeout; any other refusal is final. A
purge still not applied is logged at error level on the "cachegate" logger, naming the tenant
and tags it was for, or raised.

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

from cachegate_client import (  # noqa: E402
    DEFAULT_RETRIES,
    CachegateError,
    describe_purge,
    send_invalidation,
)

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


def _raise_by_default():
    return os.environ.get("CACHEGATE_WEBHOOK_RAISE", "").strip().lower() in ("1", "true", "yes")


def send_now(payload, raise_errors=None):
    """Sends one purge request, blocking, retrying as described above; a final failure is logged,
    or raised when ``raise_errors`` (default: CACHEGATE_WEBHOOK_RAISE)."""
    url = os.environ.get("CACHEGATE_WEBHOOK_URL", "")
    if not url:
        return
    if raise_errors is None:
        raise_errors = _raise_by_default()
    secret = os.environ.get("CACHEGATE_WEBHOOK_SECRET", "")
    try:
        timeout = float(os.environ.get("CACHEGATE_WEBHOOK_TIMEOUT", "2.0"))
        retries = int(os.environ.get("CACHEGATE_WEBHOOK_RETRIES", str(DEFAULT_RETRIES)))
        send_invalidation(url, secret, payload, timeout=timeout, retries=retries)
    except CachegateError as e:
        if raise_errors:
            raise
        # The message names what was not purged and the proxy's answer, never the secret.
        logger.error("%s; those entries may be stale until their TTL", e)
    except (ValueError, TypeError) as e:
        if raise_errors:
            raise
        logger.error("cachegate purge not sent (%s): %s", describe_purge(payload), e)


class Invalidator:
    """Per-request helper handed out by ``get_invalidator``."""

    def __init__(self, background_tasks: BackgroundTasks):
        self._background = background_tasks

    async def purge(self, payload, raise_errors=None):
        """Sends now, off the event loop, and returns once the proxy has answered (or the retries
        are spent)."""
        await asyncio.to_thread(send_now, payload, raise_errors)

    def purge_later(self, payload):
        """Queues the purge to run after the response is sent."""
        # Nobody could catch a raise there: a final failure is always logged.
        self._background.add_task(send_now, payload, False)


def get_invalidator(background_tasks: BackgroundTasks) -> Invalidator:
    """FastAPI dependency: ``inv: Invalidator = Depends(get_invalidator)``."""
    return Invalidator(background_tasks)
