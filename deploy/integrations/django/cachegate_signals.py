"""Django integration: purge cachegate entries when a model instance is saved or deleted.

Writes that do not pass through the proxy (admin, Celery jobs, management commands) would
otherwise leave cached reads stale until their TTL. After the transaction commits, this sends

    {"tenant": "<instance.organization_id>", "tags": ["<resource>", "<resource>:<pk>"]}

to cachegate's signed webhook. Settings read:

    CACHEGATE_WEBHOOK_URL     e.g. "http://cachegate:8080/_cachegate/invalidate"
    CACHEGATE_WEBHOOK_SECRET  the shared secret (a comma-separated list while rotating)
    CACHEGATE_WEBHOOK_TIMEOUT seconds for the whole send, retries included, default 2.0
    CACHEGATE_WEBHOOK_RETRIES retries after a failure that may pass, default 3
    CACHEGATE_WEBHOOK_RAISE   raise on failure instead of logging it, default False

A send that fails because the proxy is unreachable, slow, or answers 5xx or 429 is retried with
exponential backoff, signed anew each time, within the timeout; any other refusal is final. A
purge still not applied is logged at error level on the "cachegate" logger, naming the tenant
and tags it was for (or raised, with CACHEGATE_WEBHOOK_RAISE).

When CACHEGATE_WEBHOOK_URL is empty or unset, nothing is sent (local development, tests).
"""

import logging
import os
import sys

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

# The signer lives one folder up and has no Django dependency; it is found by path so this
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

__all__ = ["invalidation_receiver", "connect_model", "send_now"]


def send_now(payload):
    """Sends one purge request now, honouring the settings above."""
    url = getattr(settings, "CACHEGATE_WEBHOOK_URL", "")
    if not url:
        return
    secret = getattr(settings, "CACHEGATE_WEBHOOK_SECRET", "")
    try:
        timeout = float(getattr(settings, "CACHEGATE_WEBHOOK_TIMEOUT", 2.0))
        retries = int(getattr(settings, "CACHEGATE_WEBHOOK_RETRIES", DEFAULT_RETRIES))
        send_invalidation(url, secret, payload, timeout=timeout, retries=retries)
    except CachegateError as e:
        if getattr(settings, "CACHEGATE_WEBHOOK_RAISE", False):
            raise
        # The message names what was not purged and the proxy's answer, never the secret.
        logger.error("%s; those entries may be stale until their TTL", e)
    except (ValueError, TypeError) as e:
        if getattr(settings, "CACHEGATE_WEBHOOK_RAISE", False):
            raise
        logger.error("cachegate purge not sent (%s): %s", describe_purge(payload), e)


def _payload(resource, instance, tenant_attr, extra_tags=()):
    payload = {"tags": [resource, "%s:%s" % (resource, instance.pk)] + list(extra_tags)}
    tenant = getattr(instance, tenant_attr, None) if tenant_attr else None
    # No tenant means the shared scope; sending str(None) would name a tenant called "None".
    if tenant is not None:
        payload["tenant"] = str(tenant)
    return payload


def invalidation_receiver(resource, tenant_attr="organization_id", extra_tags=()):
    """A post_save/post_delete receiver that purges ``resource`` and ``resource:<pk>`` on commit.

    ``tenant_attr`` names the attribute holding the tenant id; None for untenanted models.
    ``extra_tags`` are purged too, as a route's ``invalidates`` are on writes through the proxy.
    """
    extra_tags = tuple(extra_tags)

    def receiver(sender, instance, using=None, **kwargs):
        if kwargs.get("raw"):
            # Fixture loading: the rows are not live data yet.
            return
        payload = _payload(resource, instance, tenant_attr, extra_tags)
        # on_commit runs right after the commit, before the response is returned, so a client
        # that sees the write acknowledged cannot then read the old entry; on rollback, nothing
        # changed and nothing is sent.
        transaction.on_commit(lambda: send_now(payload), using=using)

    return receiver


def connect_model(model, resource, tenant_attr="organization_id", extra_tags=()):
    """Connects the receiver for ``model`` to post_save and post_delete; returns it."""
    receiver = invalidation_receiver(resource, tenant_attr, extra_tags)
    uid = "cachegate:%s.%s:%s" % (model._meta.app_label, model._meta.model_name, resource)
    post_save.connect(receiver, sender=model, weak=False, dispatch_uid=uid + ":save")
    post_delete.connect(receiver, sender=model, weak=False, dispatch_uid=uid + ":delete")
    return receiver
