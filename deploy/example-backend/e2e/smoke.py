"""Deterministic checks of cachegate in front of an example backend, run by run.sh before the
concurrent workload of check.py, on a fresh database and an empty cache: anonymous callers are
refused; a repeated read is a hit (also with the query reordered, and for another user of the
organization); writes through the proxy and direct writes on the backend's port are visible on
the next read, lists included; a faculty write purges the department lists; another
organization's objects are 404 and its entries untouched. Exits 1 when a check fails.
Standard library only.

Environment: BACKEND and PROXY, the base URLs.
"""

import json
import os
import sys
import urllib.error
import urllib.request

BACKEND = os.environ["BACKEND"]
PROXY = os.environ["PROXY"]
TOKENS = {name: name[0] * 40 for name in ("alice", "bob", "carol", "dave")}

failures = []


def call(method, url, user=None, body=None, headers=None):
    """(status, Cache-Status, decoded JSON or None)."""
    request = urllib.request.Request(url, method=method)
    if user is not None:
        request.add_header("Authorization", "Token " + TOKENS[user])
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, head, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        status, head, raw = e.code, e.headers, e.read()
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = raw
    return status, head.get("Cache-Status", "-"), data


checks = 0


def check(what, ok, seen):
    global checks
    checks += 1
    if not ok:
        print("FAIL %s (%s)" % (what, seen))
        failures.append(what)


def get(path, user="alice"):
    return call("GET", PROXY + path, user)


# Anonymous callers are refused by cachegate, without a cached answer.
status, cs, body = get("/api/departments/", user=None)
check("anonymous list is 401", status == 401, "%d %s" % (status, cs))
status, cs, body = get("/api/departments/1/", user=None)
check("anonymous detail is 401", status == 401, "%d %s" % (status, cs))

# A repeated read is a hit; another user of the same organization shares it.
status, cs, first = get("/api/departments/?page=2&page_size=3")
check("first list read stored", status == 200 and "stored" in cs, "%d %s" % (status, cs))
status, cs, body = get("/api/departments/?page_size=3&page=2")
check("repeated list read (query reordered) is a hit", cs == "cachegate; hit", cs)
check("hit has the same body", body == first, "")
status, cs, body = get("/api/departments/?page=2&page_size=3", user="dave")
check("dave (same organization) hits alice's entry", cs == "cachegate; hit", cs)
check("pagination links name the proxy", (first or {}).get("next", "").startswith(PROXY + "/api/departments/?"),
      (first or {}).get("next"))

status, cs, dept = get("/api/departments/1/")
check("detail read", status == 200 and dept["organization"] == 1, "%d %s" % (status, cs))
status, cs, dept = get("/api/departments/1/")
check("repeated detail read is a hit", cs == "cachegate; hit", cs)
version = dept["version"]

# A write through the proxy: its answer carries the new version, and so does the next read.
status, cs, written = call("PATCH", PROXY + "/api/departments/1/", "alice", {"budget": 4242})
check("PATCH through the proxy bumps the version", status == 200 and written["version"] == version + 1,
      "%d %s %s" % (status, cs, written))
status, cs, dept = get("/api/departments/1/")
check("read after PATCH shows the new version", dept["version"] == version + 1 and dept["budget"] == 4242,
      "%s %s" % (cs, dept))
status, cs, dept = get("/api/departments/1/")
check("and is cached again", cs == "cachegate; hit", cs)

# A direct write on the backend's port: only its webhook tells cachegate.
get("/api/departments/")
status, cs, page = get("/api/departments/")
check("list cached before the direct write", cs == "cachegate; hit", cs)
status, _, bumped = call("POST", BACKEND + "/api/direct/departments/1/bump/", "alice")
check("direct bump", status == 200 and bumped["version"] == version + 2, "%d %s" % (status, bumped))
status, cs, dept = get("/api/departments/1/")
check("proxy read after the direct bump shows it", dept["version"] == version + 2, "%s %s" % (cs, dept))
status, cs, page = get("/api/departments/")
listed = [d["version"] for d in page["results"] if d["id"] == 1]
check("the list was purged too", listed == [version + 2] and cs != "cachegate; hit", "%s %s" % (cs, listed))

# Faculty: a direct bump purges the member and, through the "department" tag, department lists.
get("/api/faculty/2/")
status, cs, member = get("/api/faculty/2/")
check("faculty detail hit", cs == "cachegate; hit", cs)
status, cs, _ = get("/api/departments/")
check("department list hit before the faculty write", cs == "cachegate; hit", cs)
status, _, bumped = call("POST", BACKEND + "/api/direct/faculty/2/bump/", "alice")
status, cs, after = get("/api/faculty/2/")
check("faculty read after its direct bump shows it", after["version"] == member["version"] + 1, "%s %s" % (cs, after))
status, cs, _ = get("/api/departments/")
check("a faculty write purges department lists", cs != "cachegate; hit", cs)
status, cs, page = get("/api/faculty/?department=1&ordering=-name")
check("faculty list filtered by department", status == 200 and all(f["department"] == 1 for f in page["results"]),
      "%d %s count=%s" % (status, cs, page.get("count")))

# Tenant isolation: bob's department is cached for bob, and still 404 for alice.
status, cs, theirs = get("/api/departments/13/", user="bob")
get("/api/departments/13/", user="bob")
status, cs, _ = get("/api/departments/13/", user="bob")
check("bob's detail is cached for bob", status == 200 and cs == "cachegate; hit", "%d %s" % (status, cs))
status, cs, body = get("/api/departments/13/", user="alice")
check("alice cannot read bob's department", status == 404, "%d %s %s" % (status, cs, body))
status, cs, page = get("/api/departments/?page=2&page_size=3", user="carol")
check("carol's list is her own", status == 200 and all(d["organization"] == 3 for d in page["results"])
      and cs != "cachegate; hit", "%d %s" % (status, cs))
status, cs, body = call("PATCH", PROXY + "/api/departments/13/", "alice", {"budget": 1})
check("alice cannot write bob's department", status == 404, "%d %s" % (status, cs))
status, cs, theirs_after = get("/api/departments/13/", user="bob")
check("and bob's entry is untouched", theirs_after == theirs, cs)

if failures:
    print("%d failed: %s" % (len(failures), ", ".join(failures)))
    sys.exit(1)
print("smoke: %d checks passed" % checks)
