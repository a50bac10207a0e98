"""cachegate webhook client: signs purge requests and sends them to POST /_cachegate/invalidate.

Standard library only, so the backend needs no new dependency. The signature header is
``Cachegate-Signature: t=<unix seconds>,v1=<hex>`` where v1 is HMAC-SHA256(secret, "<t>.<body>").

Usage from the command line:

    python3 cachegate_client.py sign --secret S --t 1700000000 < body.json
    python3 cachegate_client.py send --url http://127.0.0.1:8080/_cachegate/invalidate \\
        --secret-env CACHEGATE_WEBHOOK_SECRET --json '{"tenant": "42", "tags": ["rooms"]}'

A send that fails for a reason that may pass (the proxy unreachable, a timeout, a 5xx or 429
answer) is retried with exponential backoff, each attempt signed anew, until it succeeds, the
retries are used up or the time budget is spent; a 4xx answer other than 429 is final. Retrying
is safe: a purge only removes entries, and the proxy applies a repeated message again.

The secret is never printed or logged; prefer --secret-env over --secret, since command-line
arguments are visible to other users of the machine.
"""

import argparse
import hashlib
import hmac
import http.client
import json
import logging
import os
import random
import secrets as _random
import sys
import time
import urllib.error
import urllib.request

SIGNATURE_HEADER = "Cachegate-Signature"

#: Retries after the first attempt, when the caller does not say.
DEFAULT_RETRIES = 3
#: The first backoff delay in seconds; each further one doubles (with jitter).
DEFAULT_BACKOFF = 0.1
#: No attempt is started with less time than this left in the budget.
_MIN_ATTEMPT = 0.05

logger = logging.getLogger("cachegate")

__all__ = [
    "CachegateError",
    "DEFAULT_RETRIES",
    "SIGNATURE_HEADER",
    "describe_purge",
    "send_invalidation",
    "sign",
    "signature_header",
]


class CachegateError(RuntimeError):
    """The proxy refused the invalidation or could not be reached, after every allowed attempt.

    ``status`` is the last HTTP status (None when no answer came), ``body`` the last answer's
    body, ``attempts`` how many sends were made, and ``retryable`` whether the last failure was
    one that a later send might not meet (unreachable, timeout, 5xx, 429).
    """

    def __init__(self, message, status=None, body=None, attempts=1, retryable=False):
        super().__init__(message)
        self.status = status
        self.body = body
        self.attempts = attempts
        self.retryable = retryable


def describe_purge(payload):
    """What a purge body asks for, for log lines: its tenant scope, tags, paths and the rest."""
    if not isinstance(payload, dict):
        return repr(payload)
    tenant = payload.get("tenant", payload.get("organization_id"))
    if tenant is None:
        parts = ["shared entries"]
    elif tenant == "*":
        parts = ["every tenant"]
    else:
        parts = ["tenant %s" % tenant]
    for key in ("tags", "paths", "prefixes"):
        items = payload.get(key)
        if items:
            parts.append("%s %s" % (key, ", ".join(str(item) for item in items)))
    for key in ("resource_type", "user", "credential_cache"):
        if payload.get(key) is not None:
            parts.append("%s %s" % (key, payload[key]))
    if payload.get("all"):
        parts.append("all entries")
    return "; ".join(parts)


def sign(secret: bytes, body: bytes, t: int) -> str:
    """The Cachegate-Signature value for ``body`` at unix time ``t`` under one secret."""
    return signature_header([secret], body, t)


def signature_header(secret_list, body: bytes, t: int) -> str:
    """A Cachegate-Signature value with one v1 per secret, for use while a secret is rotated."""
    t = int(t)
    if t < 0:
        raise ValueError("t must be a non-negative unix time")
    signed = str(t).encode("ascii") + b"." + body
    parts = ["t=%d" % t]
    for secret in secret_list:
        parts.append("v1=" + hmac.new(secret, signed, hashlib.sha256).hexdigest())
    return ",".join(parts)


def _secret_list(secret):
    """Accepts bytes or str, holding one secret or a comma-separated list as the proxy reads it."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not isinstance(secret, (bytes, bytearray)):
        raise TypeError("secret must be str or bytes")
    found = [item.strip() for item in bytes(secret).split(b",")]
    found = [item for item in found if item]
    if not found:
        raise ValueError("no webhook secret given")
    return found


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Following a redirect would turn the POST into a GET and report success for a purge that never happened."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


class _Failed(Exception):
    """One attempt failed; the caller decides whether to try again."""

    def __init__(self, reason, status=None, body=None, retryable=False, retry_after=None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.body = body
        self.retryable = retryable
        self.retry_after = retry_after


def _retry_after(headers):
    """Seconds from a numeric Retry-After header, else None (an HTTP-date is ignored)."""
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None


def _post_once(url, secret_list, body, timeout):
    """One signed POST; returns the answer's body, or raises _Failed."""
    # Signed now, not once for all attempts: a retry late in the budget carries a current time.
    header = signature_header(secret_list, body, int(time.time()))
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: header},
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            status = response.status
            answer = response.read()
    except urllib.error.HTTPError as e:
        try:
            detail = e.read(2048).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            detail = ""
        # 5xx and 429 may pass; any other answer (a bad signature, a bad body, a redirect) would
        # be the same on every attempt.
        retryable = e.code >= 500 or e.code == 429
        raise _Failed(
            "cachegate answered %d %s" % (e.code, detail),
            e.code,
            detail,
            retryable,
            _retry_after(e.headers),
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = str(getattr(e, "reason", None) or e) or type(e).__name__
        raise _Failed("cachegate unreachable: %s" % reason, retryable=True) from None
    if not 200 <= status < 300:
        raise _Failed("cachegate answered %d" % status, status, answer)
    return answer


def send_invalidation(url, secret, payload: dict, timeout=2.0, retries=DEFAULT_RETRIES,
                      backoff=DEFAULT_BACKOFF):
    """Signs ``payload`` and posts it to ``url``; returns the decoded JSON answer.

    ``timeout`` is the budget in seconds for the whole send, retries and waits included; an
    attempt may use the time left divided by the attempts still allowed (the last one all of
    it). A failure that may pass (unreachable, timeout, 5xx, 429) is retried up to ``retries``
    times, after ``backoff`` seconds doubled at each retry (with jitter, at least a 429's or
    503's numeric Retry-After), while the budget allows; each attempt is signed anew.

    A random ``nonce`` is added unless the payload has one, so each call is a distinct message
    and the proxy's count of repeated messages counts only true resends.

    Raises CachegateError, whose message names what was not purged, when every allowed attempt
    failed; ValueError or TypeError when the arguments are unusable (nothing is sent then).
    """
    if not isinstance(payload, dict):
        raise TypeError("payload must be a dict")
    secret_list = _secret_list(secret)
    budget = float(timeout)
    if not budget > 0:
        raise ValueError("timeout must be a positive number of seconds")
    retries = max(0, int(retries))
    payload = dict(payload)
    payload.setdefault("nonce", _random.token_hex(8))
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    started = time.monotonic()
    deadline = started + budget
    attempt = 0
    while True:
        attempt += 1
        # This attempt and the retries still allowed share the time left.
        share = (deadline - time.monotonic()) / (retries + 2 - attempt)
        try:
            answer = _post_once(url, secret_list, body, max(_MIN_ATTEMPT, share))
            break
        except _Failed as failure:
            delay = backoff * (2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            if failure.retry_after is not None:
                delay = max(delay, failure.retry_after)
            out_of_time = deadline - time.monotonic() < delay + _MIN_ATTEMPT
            if not failure.retryable or attempt > retries or out_of_time:
                raise CachegateError(
                    "cachegate purge not applied (%s) after %d attempt%s in %.1fs: %s"
                    % (
                        describe_purge(payload),
                        attempt,
                        "" if attempt == 1 else "s",
                        time.monotonic() - started,
                        failure.reason,
                    ),
                    failure.status,
                    failure.body,
                    attempt,
                    failure.retryable,
                ) from None
            logger.warning(
                "cachegate purge attempt %d failed, retrying in %.2fs: %s",
                attempt,
                delay,
                failure.reason,
            )
            time.sleep(delay)
    if not answer:
        return None
    try:
        return json.loads(answer)
    except ValueError:
        return None


def _read_secret(args):
    if args.secret is not None:
        return args.secret
    value = os.environ.get(args.secret_env or "")
    if not value:
        raise SystemExit("error: environment variable %s is empty or unset" % args.secret_env)
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="cachegate_client.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    sign_cmd = commands.add_parser("sign", help="print the signature header value for the body on stdin")
    group = sign_cmd.add_mutually_exclusive_group(required=True)
    group.add_argument("--secret", help="the secret (visible in the process list)")
    group.add_argument("--secret-env", help="the environment variable holding the secret")
    sign_cmd.add_argument("--t", type=int, default=None, help="unix seconds (default: now)")

    send_cmd = commands.add_parser("send", help="sign and send a purge request")
    send_cmd.add_argument("--url", required=True)
    group = send_cmd.add_mutually_exclusive_group(required=True)
    group.add_argument("--secret", help="the secret (visible in the process list)")
    group.add_argument("--secret-env", help="the environment variable holding the secret")
    send_cmd.add_argument("--json", required=True, help="the purge request as a JSON object")
    send_cmd.add_argument(
        "--timeout", type=float, default=2.0, help="seconds for the whole send, retries included"
    )
    send_cmd.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        help="retries after a failure that may pass (unreachable, timeout, 5xx, 429)",
    )

    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    secret = _read_secret(args)
    if args.command == "sign":
        body = sys.stdin.buffer.read()
        t = int(time.time()) if args.t is None else args.t
        print(signature_header(_secret_list(secret), body, t))
        return 0
    try:
        payload = json.loads(args.json)
    except ValueError as e:
        raise SystemExit("error: --json is not valid JSON: %s" % e)
    if not isinstance(payload, dict):
        raise SystemExit("error: --json must be a JSON object")
    try:
        answer = send_invalidation(
            args.url, secret, payload, timeout=args.timeout, retries=args.retries
        )
    except (CachegateError, ValueError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
