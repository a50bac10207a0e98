#!/usr/bin/env python3
"""End-to-end check of cachegate in front of an example backend (deploy/example-backend/).

Runs a bounded concurrent workload against the proxy and the backend of the example API
(deploy/example-backend/*/README.md): readers on hot and random list and detail URLs with
shuffled query parameters, writers through the proxy (PATCH), direct writes on the backend's
own port (whose response means the backend's purge webhook was acknowledged), and cross-tenant
probes. Every operation is recorded with its start and end time; afterwards it checks:

  (a) no read returns a version of an object older than a write to that object that finished
      before the read started (details, and every item of a list);
  (b) no answer carries another organization's data (a probe for another organization's
      object must be a 404);
  (c) no read through the proxy answered 5xx (whether cachegate produced it or forwarded it),
      no transport error, no unexpected status;
  (d) an audit: every (URL, user) read through the proxy, fetched again through the proxy once
      the writers have stopped, equals the backend's own answer (absolute next/previous links
      compared as path and query);
  (e) no failed write: a write answered anything but 200 (a backend whose purge failed says
      so with a 5xx: the change may be saved, the invalidation was not acknowledged).

Prints the operations, the violations, the hit ratio (Cache-Status "hit") and the backend
offload, and exits 1 on any violation or when the hit ratio is below --min-hit-ratio.
Standard library only.
"""

import argparse
import bisect
import http.client
import json
import math
import os
import random
import re
import sys
import threading
import time
import urllib.parse

USERS = {"alice": "a" * 40, "dave": "d" * 40, "bob": "b" * 40, "carol": "c" * 40}
KINDS = ("departments", "faculty")
HIT = re.compile(r";\s*hit\b")
COLLAPSED = re.compile(r";\s*collapsed\b")


class Client:
    """One keep-alive HTTP/1.1 connection to one base URL (a client per thread and base)."""

    def __init__(self, base, timeout):
        parts = urllib.parse.urlsplit(base)
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, target, headers, body=None):
        """Returns (status, headers with lower-case names, body bytes); raises OSError or
        http.client.HTTPException. A request on a kept-alive connection that the server had
        closed is sent again once, on a new connection."""
        for attempt in (0, 1):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, target, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt or not reused:
                    raise
                continue
            found = {}
            for name, value in response.getheaders():
                name = name.lower()
                found[name] = found[name] + ", " + value if name in found else value
            if response.will_close:
                self.close()
            return response.status, found, data
        raise OSError("unreachable")


class Op:
    __slots__ = ("kind", "user", "via", "method", "target", "t0", "t1", "status", "cache", "data", "error", "obj")

    def __init__(self, kind, user, via, method, target):
        self.kind, self.user, self.via, self.method, self.target = kind, user, via, method, target
        self.t0 = self.t1 = 0.0
        self.status, self.cache, self.data, self.error, self.obj = None, "", None, None, None


class Check:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.ops = []
        self.stop = threading.Event()
        self.auth = {}  # user -> headers identifying them
        self.org = {}  # user -> org id (int)
        self.ids = {}  # (org, kind) -> [ids]
        self.department_ids = {}  # org -> [department ids]
        self.session_user = None

    # -- plumbing ---------------------------------------------------------------------------

    def headers(self, user, write=False):
        headers = {"Accept": "application/json"}
        headers.update(self.token_headers(user) if write else self.auth[user])
        return headers

    @staticmethod
    def token_headers(user):
        return {"Authorization": "Token " + USERS[user]}

    def run_op(self, client, op, headers, body=None):
        op.t0 = time.monotonic()
        try:
            op.status, found, raw = client.request(op.method, op.target, headers, body)
            op.cache = found.get("cache-status", "")
            if raw:
                try:
                    op.data = json.loads(raw)
                except ValueError:
                    op.data = raw[:200]
        except (http.client.HTTPException, OSError) as e:
            op.error = "%s: %s" % (type(e).__name__, e)
        op.t1 = time.monotonic()
        with self.lock:
            self.ops.append(op)
        return op

    def fetch_json(self, client, target, headers):
        status, _, raw = client.request("GET", target, headers)
        if status != 200:
            raise SystemExit("setup: GET %s answered %d: %s" % (target, status, raw[:200]))
        return json.loads(raw)

    # -- setup ------------------------------------------------------------------------------

    def setup(self):
        backend = Client(self.args.backend, self.args.timeout)
        proxy = Client(self.args.proxy, self.args.timeout)
        for user in USERS:
            self.auth[user] = self.token_headers(user)
            me = self.fetch_json(backend, "/api/auth/me/", self.headers(user))
            self.org[user] = int(me["org_id"])
        # A session user when the backend has session login (Django): dave reads with the
        # sessionid cookie, through the proxy, so the introspection of sessions is exercised.
        body = json.dumps({"username": "dave", "password": "dave"}).encode()
        try:
            status, found, _ = proxy.request(
                "POST", "/api/auth/login/", {"Content-Type": "application/json", "Accept": "application/json"}, body
            )
        except (http.client.HTTPException, OSError):
            status, found = None, {}
        match = re.search(r"(?:^|[\s,])sessionid=([^;,\s]+)", found.get("set-cookie", ""))
        if status == 200 and match:
            self.auth["dave"] = {"Cookie": "sessionid=" + match.group(1)}
            self.session_user = "dave"
            me = self.fetch_json(proxy, "/api/auth/me/", self.headers("dave"))
            if int(me["org_id"]) != self.org["dave"]:
                raise SystemExit("setup: dave's session names org %s" % me["org_id"])
        for org in sorted(set(self.org.values())):
            user = next(u for u, o in self.org.items() if o == org)
            for kind in KINDS:
                ids, target = [], "/api/%s/?page_size=50" % kind
                while target:
                    page = self.fetch_json(backend, target, self.headers(user))
                    ids += [item["id"] for item in page["results"]]
                    target = path_only(page["next"])
                if len(ids) < 6:
                    raise SystemExit("setup: org %d has only %d %s" % (org, len(ids), kind))
                self.ids[(org, kind)] = ids
            self.department_ids[org] = self.ids[(org, "departments")]
        backend.close()
        proxy.close()

    # -- workload ---------------------------------------------------------------------------

    def list_target(self, org, kind, rng, hot):
        ids = self.ids[(org, kind)]
        if hot:
            choices = [
                [],
                [("page", "2")],
                [("page_size", "10"), ("ordering", "name")],
            ]
            if kind == "faculty":
                choices.append([("department", str(self.department_ids[org][0]))])
            params = list(rng.choice(choices))
        else:
            params = []
            size = rng.choice([None, 5, 12])
            if size:
                params.append(("page_size", str(size)))
            narrowed = False
            if rng.random() < 0.3:
                params.append(("search", rng.choice(["0", "1", "-1", "ment"])))
                narrowed = True
            if kind == "faculty" and rng.random() < 0.3:
                params.append(("department", str(rng.choice(self.department_ids[org]))))
                narrowed = True
            ordering = rng.choice([None, "id", "-id", "name", "-name"])
            if ordering:
                params.append(("ordering", ordering))
            pages = math.ceil(len(ids) / (size or 5))
            if not narrowed and pages > 1 and rng.random() < 0.6:
                params.append(("page", str(rng.randint(1, min(pages, 3)))))
        rng.shuffle(params)
        query = urllib.parse.urlencode(params)
        return "/api/%s/" % kind + ("?" + query if query else "")

    def reader(self, index):
        rng = random.Random(self.args.seed * 1000 + index)
        proxy = Client(self.args.proxy, self.args.timeout)
        users = list(USERS)
        while not self.stop.is_set():
            user = rng.choice(users)
            org = self.org[user]
            kind = rng.choice(KINDS)
            ids = self.ids[(org, kind)]
            roll = rng.random()
            op_kind = "read"
            if roll < 0.35:
                target = "/api/%s/%d/" % (kind, rng.choice(ids[:3]))
            elif roll < 0.5:
                target = "/api/%s/%d/" % (kind, rng.choice(ids))
            elif roll < 0.8:
                target = self.list_target(org, kind, rng, hot=True)
            elif roll < 0.95:
                target = self.list_target(org, kind, rng, hot=False)
            else:
                op_kind = "probe"
                other = rng.choice(sorted({o for o in self.org.values() if o != org}))
                if rng.random() < 0.7:
                    target = "/api/%s/%d/" % (kind, rng.choice(self.ids[(other, kind)][:6]))
                else:
                    # A list naming another organization: the backend ignores the parameter,
                    # the answer must still be the caller's own organization's.
                    target = "/api/%s/?organization=%d" % (kind, other)
            headers = self.headers(user)
            if op_kind == "probe" and rng.random() < 0.5:
                headers["X-Org-Id"] = str(rng.choice([o for o in self.org.values() if o != org]))
            self.run_op(proxy, Op(op_kind, user, "proxy", "GET", target), headers)
        proxy.close()

    def writer(self, index, direct):
        rng = random.Random(self.args.seed * 1000 + 500 + index)
        client = Client(self.args.backend if direct else self.args.proxy, self.args.timeout)
        users = list(USERS)
        while not self.stop.is_set():
            user = rng.choice(users)
            org = self.org[user]
            kind = rng.choice(KINDS)
            ids = self.ids[(org, kind)]
            # Mostly the hot objects, so that reads of a recently written object are frequent.
            pk = rng.choice(ids[:3]) if rng.random() < 0.7 else rng.choice(ids)
            headers = self.headers(user, write=True)
            if direct:
                op = Op("direct", user, "backend", "POST", "/api/direct/%s/%d/bump/" % (kind, pk))
                body = None
            else:
                op = Op("write", user, "proxy", "PATCH", "/api/%s/%d/" % (kind, pk))
                field = {"departments": ("budget", rng.randint(1, 10**6)), "faculty": ("title", "T%d" % rng.randint(1, 999))}
                body = json.dumps(dict([field[kind]])).encode()
                headers["Content-Type"] = "application/json"
            op.obj = (kind, pk)
            self.run_op(client, op, headers, body)
            self.stop.wait(rng.uniform(0.5, 1.5) * self.args.write_interval)
        client.close()

    def workload(self):
        threads = [threading.Thread(target=self.reader, args=(i,)) for i in range(self.args.readers)]
        threads += [threading.Thread(target=self.writer, args=(i, False)) for i in range(self.args.writers)]
        threads += [threading.Thread(target=self.writer, args=(i, True)) for i in range(self.args.direct_writers)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        self.stop.wait(self.args.duration)
        self.stop.set()
        for thread in threads:
            thread.join()
        return time.monotonic() - started

    # -- checks -----------------------------------------------------------------------------

    def check(self):
        violations = []
        writes = {}  # (kind, id) -> sorted [(t1, version)]
        for op in self.ops:
            if op.kind in ("write", "direct") and op.status == 200 and isinstance(op.data, dict):
                writes.setdefault(op.obj, []).append((op.t1, op.data.get("version")))
        # For each object: the writes in order of completion, and the highest version finished
        # by each point in time.
        done = {}
        for key, found in writes.items():
            found.sort()
            ends, highest, best = [], [], 0
            for t1, version in found:
                best = max(best, version)
                ends.append(t1)
                highest.append(best)
            done[key] = (ends, highest)

        def must_have(kind, pk, t0):
            ends, highest = done.get((kind, pk), ((), ()))
            i = bisect.bisect_left(ends, t0)
            return highest[i - 1] if i else 0

        for op in self.ops:
            where = "%s %s %s as %s [%s]" % (op.via, op.method, op.target, op.user, op.cache or "-")
            if op.error:
                violations.append("transport error: %s: %s" % (where, op.error))
                continue
            if op.kind in ("write", "direct"):
                # Any other answer is a failed write, whoever gave it: the backend refusing it, or
                # the backend saying it saved the change but could not get the purge acknowledged
                # (FastAPI: 502; Django with CACHEGATE_WEBHOOK_RAISE: 500), or cachegate failing
                # to forward it. It sets no version that later reads must show (it has none to
                # give), and it is a violation: every write of the workload is valid, and a purge
                # that did not happen is an invalidation lost.
                if op.status != 200:
                    violations.append("(e) failed write: %s answered %d %s" % (where, op.status, short(op.data)))
                continue
            if op.status >= 500:
                # A read answered 5xx, produced by cachegate or forwarded from the backend.
                violations.append("(c) 5xx: %s answered %d %s" % (where, op.status, short(op.data)))
                continue
            kind = op.target.split("/")[2]
            own = self.org[op.user]
            if op.kind == "probe" and re.match(r"^/api/\w+/\d+/$", op.target):
                if op.status == 404:
                    continue
                if op.status != 200:
                    violations.append("probe: %s answered %d %s" % (where, op.status, short(op.data)))
                    continue
            elif op.status != 200:
                violations.append("unexpected status: %s answered %d %s" % (where, op.status, short(op.data)))
                continue
            items = op.data.get("results") if isinstance(op.data, dict) and "results" in op.data else [op.data]
            for item in items or ():
                if not isinstance(item, dict) or "id" not in item:
                    violations.append("malformed answer: %s: %s" % (where, short(op.data)))
                    break
                if item.get("organization") != own:
                    violations.append(
                        "(b) another organization's data: %s (org %d) got %s %s of org %s"
                        % (where, own, kind, item.get("id"), item.get("organization"))
                    )
                    continue
                need = must_have(kind, item["id"], op.t0)
                if item.get("version", 0) < need:
                    violations.append(
                        "(a) stale read: %s returned %s %s version %s, but version %d was written before the read began"
                        % (where, kind, item["id"], item.get("version"), need)
                    )
        return violations

    def audit(self):
        """Fetches every (target, user) read through the proxy again, through the proxy and from
        the backend; returns (keys audited, mismatches)."""
        keys = sorted({(op.target, op.user) for op in self.ops if op.via == "proxy" and op.method == "GET"})
        mismatches, lock, queue = [], threading.Lock(), list(keys)

        def work():
            proxy = Client(self.args.proxy, self.args.timeout)
            backend = Client(self.args.backend, self.args.timeout)
            while True:
                with lock:
                    if not queue:
                        break
                    target, user = queue.pop()
                headers = self.headers(user)
                try:
                    p_status, p_headers, p_raw = proxy.request("GET", target, headers)
                    b_status, _, b_raw = backend.request("GET", target, headers)
                except (http.client.HTTPException, OSError) as e:
                    with lock:
                        mismatches.append("(d) %s as %s: %s" % (target, user, e))
                    continue
                mine, theirs = normalise(p_raw), normalise(b_raw)
                if p_status != b_status or mine != theirs:
                    with lock:
                        mismatches.append(
                            "(d) %s as %s: proxy %d [%s] %s, backend %d %s"
                            % (target, user, p_status, p_headers.get("cache-status", "-"), short(mine), b_status, short(theirs))
                        )
            proxy.close()
            backend.close()

        threads = [threading.Thread(target=work) for _ in range(self.args.audit_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(keys), mismatches


def path_only(url):
    """An absolute or relative link as path and query; None stays None."""
    if not url:
        return None
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def normalise(raw):
    try:
        data = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(data, dict):
        for link in ("next", "previous"):
            if isinstance(data.get(link), str):
                data[link] = path_only(data[link])
    return data


def short(value, limit=300):
    text = value if isinstance(value, str) else json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def print_stats(args):
    """cachegate's own counters, for the record (they decide nothing)."""
    token = os.environ.get(args.admin_token_env, "")
    client = Client(args.admin, args.timeout)
    try:
        status, _, raw = client.request("GET", "/stats", {"Authorization": "Bearer " + token})
        stats = json.loads(raw) if status == 200 else None
    except (http.client.HTTPException, OSError, ValueError) as e:
        status, stats = str(e), None
    finally:
        client.close()
    if not isinstance(stats, dict):
        print("cachegate /stats: unavailable (%s)" % status)
        return
    totals = stats.get("totals", stats)
    flat = {k: v for k, v in totals.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v}
    print("cachegate /stats (non-zero totals): " + ", ".join("%s=%s" % kv for kv in sorted(flat.items())))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", required=True, help="cachegate's base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--backend", required=True, help="the backend's own base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of workload (default 15)")
    parser.add_argument("--readers", type=int, default=6)
    parser.add_argument("--writers", type=int, default=2, help="threads writing through the proxy")
    parser.add_argument("--direct-writers", type=int, default=1, help="threads writing on the backend's port")
    parser.add_argument("--write-interval", type=float, default=0.2, help="mean seconds between a writer's writes")
    parser.add_argument("--audit-threads", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per request")
    parser.add_argument("--min-hit-ratio", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: drawn and printed)")
    parser.add_argument("--admin", help="cachegate's admin base URL: its GET /stats counters are printed at the end")
    parser.add_argument("--admin-token-env", default="CACHEGATE_ADMIN_TOKEN", help="the variable holding the admin token")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 10**6)
    print("seed %d, %g s, %d readers, %d proxy writers, %d direct writers" % (
        args.seed, args.duration, args.readers, args.writers, args.direct_writers))

    check = Check(args)
    check.setup()
    if check.session_user:
        print("%s reads with a session cookie, the others with tokens" % check.session_user)
    elapsed = check.workload()
    violations = check.check()
    audit_started = time.monotonic()
    audited, mismatches = check.audit()
    audit_elapsed = time.monotonic() - audit_started
    violations += mismatches

    ops = check.ops
    reads = [op for op in ops if op.via == "proxy" and op.method == "GET"]
    count = lambda kind: sum(1 for op in ops if op.kind == kind)  # noqa: E731
    hits = sum(1 for op in reads if HIT.search(op.cache))
    collapsed = sum(1 for op in reads if COLLAPSED.search(op.cache))
    fives = sum(1 for op in reads if op.status is not None and op.status >= 500)
    failed_writes = sum(1 for op in ops if op.kind in ("write", "direct") and op.status != 200)
    ratio = hits / len(reads) if reads else 0.0
    offload = (hits + collapsed) / len(reads) if reads else 0.0
    statuses = {}
    for op in reads:
        label = re.sub(r"^cachegate;\s*", "", op.cache) or "-"
        statuses[label] = statuses.get(label, 0) + 1

    print("operations: %d in %.1f s (%d reads and %d cross-tenant probes through the proxy, %d writes through the proxy, %d direct writes)"
          % (len(ops), elapsed, count("read"), count("probe"), count("write"), count("direct")))
    print("cache-status of proxy reads: " + ", ".join("%s: %d" % kv for kv in sorted(statuses.items(), key=lambda kv: -kv[1])))
    print("audit: %d (URL, user) keys in %.1f s, %d mismatches" % (audited, audit_elapsed, len(mismatches)))
    print("5xx answers to reads through the proxy: %d" % fives)
    print("failed writes: %d" % failed_writes)
    print("violations: %d" % len(violations))
    for line in violations[:30]:
        print("  " + line)
    if len(violations) > 30:
        print("  ... and %d more" % (len(violations) - 30))
    print("hit ratio: %.3f (%d hits / %d proxy reads)" % (ratio, hits, len(reads)))
    print("backend offload: %.3f of proxy reads answered without a backend request (hits + collapsed)" % offload)

    if args.admin:
        print_stats(args)

    failed = []
    if violations:
        failed.append("%d violations" % len(violations))
    if ratio < args.min_hit_ratio:
        failed.append("hit ratio %.3f below %.3f" % (ratio, args.min_hit_ratio))
    if failed:
        print("FAIL: " + ", ".join(failed))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
