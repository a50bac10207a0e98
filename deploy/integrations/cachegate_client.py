"""cachegate webhook client: signs purge requests and sends them to POST /_cachegate/invalidate.

Standard library only, so the backend needs no new dependency. The signature header is
``Cachegate-Signature: t=<unix seconds>,v1=<hex>`` where v1 is HMAC-SHA256(secret, "<t>.<body>").

Usage from the command line:

    python3 cachegate_client.py sign --secret S --t 1700000000 < body.json
    python3 cachegate_client.py send --url http://127.0.0.1:8080/_cachegate/invalidate \\
        --secret-env CACHEGATE_WEBHOOK_SECRET --json '{"tenant": "42", "tags": ["rooms"]}'

The secret is never printed or logged; prefer --secret-env over --secret, since command-line
arguments are visible to other users of the machine.
"""

import argparse
import hashlib
import hmac
import json
import os
import secrets as _random
import sys
import time
import urllib.error
import urllib.request

SIGNATURE_HEADER = "Cachegate-Signature"

__all__ = ["CachegateError", "sign", "signature_header", "send_invalidation", "SIGNATURE_HEADER"]


class CachegateError(RuntimeError):
    """The proxy refused the invalidation or could not be reached."""

    def __init__(self, message, status=None, body=None):
        super().__init__(message)
        self.status = status
        self.body = body


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


def send_invalidation(url, secret, payload: dict, timeout=2.0):
    """Signs ``payload`` and posts it to ``url``; returns the decoded JSON answer.

    A random ``nonce`` is added unless the payload has one: the signature covers only the time
    in seconds and the body, so two identical purges within one second would otherwise carry
    the same signature and the second would be refused as a replay.

    Raises CachegateError on any non-2xx answer or network failure. Nothing is retried here:
    a retry must be signed anew (this function does that on each call).
    """
    if not isinstance(payload, dict):
        raise TypeError("payload must be a dict")
    payload = dict(payload)
    payload.setdefault("nonce", _random.token_hex(8))
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    header = signature_header(_secret_list(secret), body, int(time.time()))
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
        detail = e.read(2048).decode("utf-8", "replace")
        raise CachegateError(
            "cachegate refused the invalidation: %d %s" % (e.code, detail), e.code, detail
        ) from None
    except (urllib.error.URLError, OSError) as e:
        raise CachegateError("cachegate unreachable: %s" % (getattr(e, "reason", None) or e)) from None
    if not 200 <= status < 300:
        raise CachegateError("cachegate answered %d" % status, status, answer)
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
    send_cmd.add_argument("--timeout", type=float, default=2.0)

    args = parser.parse_args(argv)
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
        answer = send_invalidation(args.url, secret, payload, timeout=args.timeout)
    except CachegateError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
