"""Example multi-tenant API in FastAPI, put behind cachegate.

Organizations own departments and faculty members; every user belongs to one organization and
only ever sees its data. The API mirrors a Django REST Framework project (token authentication,
PageNumberPagination, SearchFilter and OrderingFilter), so one cachegate configuration and one
test serve both example backends.

Run from this folder:

    uvicorn app:app --host 127.0.0.1 --port 8000

Environment:

    EXAMPLE_DB_PATH            the SQLite file; deleted and seeded again at every start
                               (default: example.sqlite3 beside this file)
    CACHEGATE_WEBHOOK_URL      where purges go, e.g. http://127.0.0.1:8080/_cachegate/invalidate
                               (empty: nothing is sent, as in local development)
    CACHEGATE_WEBHOOK_SECRET   the secret cachegate verifies purges with

Every write, through the API or through the /api/direct/ endpoints (which stand for writes made
elsewhere: an admin screen, a job), commits, then sends cachegate a signed purge for the tags
of what it changed and waits for the answer before it responds.
"""

import hashlib
import hmac
import logging
import math
import os
import re
import sqlite3
import sys
from contextlib import asynccontextmanager, closing
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

HERE = os.path.dirname(os.path.abspath(__file__))
# The integration is used as shipped: its folder on the path, as a project that copies it would.
INTEGRATION = os.path.normpath(os.path.join(HERE, "..", "..", "integrations", "fastapi"))
if INTEGRATION not in sys.path:
    sys.path.insert(0, INTEGRATION)

from cachegate_dep import Invalidator, get_invalidator, resource_payload  # noqa: E402
from cachegate_client import CachegateError  # noqa: E402  (one folder up, put on the path by cachegate_dep)

logger = logging.getLogger("example")

DB_PATH = os.environ.get("EXAMPLE_DB_PATH") or os.path.join(HERE, "example.sqlite3")

PAGE_SIZE = 5
MAX_PAGE_SIZE = 50
ORDERINGS = {"id": "id ASC", "-id": "id DESC", "name": "name ASC, id ASC", "-name": "name DESC, id DESC"}

USERS = [
    # username, organization, token; the password is the username
    ("alice", 1, "a" * 40),
    ("bob", 2, "b" * 40),
    ("carol", 3, "c" * 40),
    ("dave", 1, "d" * 40),
]
SUBJECTS = [
    "Mathematics", "Physics", "Chemistry", "Biology", "History", "Philosophy",
    "Economics", "Linguistics", "Music", "Geology", "Astronomy", "Computer Science",
]
TITLES = ["Professor", "Associate Professor", "Assistant Professor", "Lecturer"]
SURNAMES = [
    "Abbott", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito",
    "Jensen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Patel", "Quinn", "Rossi",
]

SCHEMA = """
CREATE TABLE organization (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL
);
CREATE TABLE user (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password TEXT NOT NULL,
    organization_id INTEGER NOT NULL REFERENCES organization(id),
    token TEXT NOT NULL UNIQUE
);
CREATE TABLE department (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id INTEGER NOT NULL REFERENCES organization(id),
    name TEXT NOT NULL,
    budget INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX department_org ON department(organization_id);
CREATE TABLE faculty (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id INTEGER NOT NULL REFERENCES organization(id),
    department_id INTEGER NOT NULL REFERENCES department(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX faculty_org ON faculty(organization_id);
CREATE INDEX faculty_department ON faculty(department_id);
"""


# ---------------------------------------------------------------------------------------------
# Database: one connection per unit of work, opened and closed in the worker thread that uses
# it. WAL lets readers go on while one writer holds the lock; writes take it up front
# (BEGIN IMMEDIATE) so two writers never deadlock upgrading a read lock.


def connect():
    conn = sqlite3.connect(DB_PATH, timeout=10.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


class transaction:
    """``with transaction(write=True) as conn:`` commits on success, rolls back on error."""

    def __init__(self, write=False):
        self.write = write
        self.conn = None

    def __enter__(self):
        self.conn = connect()
        self.conn.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
        return self.conn

    def __exit__(self, kind, value, tb):
        try:
            self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self.conn.close()
        return False


def password_hash(password, salt):
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("ascii"), 10_000)
    return "pbkdf2_sha256$%s$%s" % (salt, digest.hex())


def password_matches(password, stored):
    try:
        _, salt, _ = stored.split("$", 2)
    except ValueError:
        return False
    return hmac.compare_digest(password_hash(password, salt), stored)


def create_database():
    """Deletes the database file and seeds it: three organizations, four users, 12 departments
    and 36 faculty members per organization, every version 1."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(DB_PATH + suffix)
        except FileNotFoundError:
            pass
    with closing(connect()) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SCHEMA)
        conn.execute("BEGIN")
        for org in (1, 2, 3):
            conn.execute("INSERT INTO organization (id, name) VALUES (?, ?)", (org, "Org %d" % org))
        for username, org, token in USERS:
            conn.execute(
                "INSERT INTO user (username, password, organization_id, token) VALUES (?, ?, ?, ?)",
                (username, password_hash(username, "seed" + username), org, token),
            )
        for org in (1, 2, 3):
            departments = []
            for i, subject in enumerate(SUBJECTS):
                cur = conn.execute(
                    "INSERT INTO department (organization_id, name, budget) VALUES (?, ?, ?)",
                    (org, subject, 100_000 + 5_000 * i + 1_000 * org),
                )
                departments.append(cur.lastrowid)
            for i in range(36):
                conn.execute(
                    "INSERT INTO faculty (organization_id, department_id, name, title)"
                    " VALUES (?, ?, ?, ?)",
                    (
                        org,
                        departments[i % len(departments)],
                        "%s %s" % (chr(ord("A") + i % 26), SURNAMES[(i + org) % len(SURNAMES)]),
                        TITLES[i % len(TITLES)],
                    ),
                )
        conn.execute("COMMIT")


# ---------------------------------------------------------------------------------------------
# Authentication: DRF's TokenAuthentication, "Authorization: Token <key>".


class User:
    def __init__(self, row):
        self.id = row["id"]
        self.username = row["username"]
        self.org = row["organization_id"]


def unauthorized(detail):
    # DRF answers 401 with the first authenticator's header when one is configured.
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Token"})


def find_user(token):
    with closing(connect()) as conn:
        return conn.execute(
            "SELECT id, username, organization_id FROM user WHERE token = ?", (token,)
        ).fetchone()


def current_user(request: Request) -> User:
    """Dependency (run in the thread pool, like every sync dependency): the caller or 401."""
    words = request.headers.get("authorization", "").split()
    if not words or words[0].lower() != "token":
        raise unauthorized("Authentication credentials were not provided.")
    if len(words) == 1:
        raise unauthorized("Invalid token header. No credentials provided.")
    if len(words) > 2:
        raise unauthorized("Invalid token header. Token string should not contain spaces.")
    row = find_user(words[1])
    if row is None:
        raise unauthorized("Invalid token.")
    return User(row)


# ---------------------------------------------------------------------------------------------
# Pagination, search and ordering, as DRF's PageNumberPagination, SearchFilter and
# OrderingFilter do them.


def absolute_uri(request: Request):
    """The request's absolute URI as Django builds it with USE_X_FORWARDED_HOST = True and
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https"): the forwarded host and scheme
    when a proxy (cachegate) sets them, else the request's own."""
    host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
    if not host:
        host = request.headers.get("host", "") or "%s:%d" % (request.url.hostname, request.url.port)
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    scheme = "https" if proto == "https" else request.url.scheme
    path = quote(request.url.path, safe="/:@&+$,-_.!~*'()")
    query = request.url.query
    return "%s://%s%s%s" % (scheme, host, path, "?" + query if query else "")


def with_page(url, page):
    """DRF's replace_query_param / remove_query_param: the query re-encoded, sorted by name."""
    base, _, query = url.partition("?")
    params = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(name, []).append(value)
    if page is None:
        params.pop("page", None)
    else:
        params["page"] = [str(page)]
    query = urlencode(sorted(params.items()), doseq=True)
    return base + ("?" + query if query else "")


def page_size_of(request: Request):
    try:
        size = int(request.query_params["page_size"])
    except (KeyError, ValueError):
        return PAGE_SIZE
    if size <= 0:
        return PAGE_SIZE
    return min(size, MAX_PAGE_SIZE)


def search_terms(request: Request):
    text = request.query_params.get("search", "").replace("\x00", "").replace(",", " ")
    return [term.lower() for term in text.split()]


def ordering_of(request: Request):
    # Unknown fields are ignored, and the view's default ordering applies.
    for field in request.query_params.get("ordering", "").split(","):
        if field.strip() in ORDERINGS:
            return ORDERINGS[field.strip()]
    return ORDERINGS["id"]


def paginate(request: Request, table, columns, where, args, serialize):
    """Runs the count and the page in one read transaction and answers DRF's page shape."""
    size = page_size_of(request)
    for term in search_terms(request):
        where.append("instr(lower(name), ?) > 0")
        args.append(term)
    condition = " AND ".join(where)
    with transaction() as conn:
        count = conn.execute("SELECT count(*) FROM %s WHERE %s" % (table, condition), args).fetchone()[0]
        pages = max(1, math.ceil(count / size))
        raw = request.query_params.get("page") or "1"
        try:
            number = pages if raw == "last" else int(raw)
        except ValueError:
            number = 0
        if number < 1 or number > pages:
            raise HTTPException(status_code=404, detail="Invalid page.")
        rows = conn.execute(
            "SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT ? OFFSET ?"
            % (columns, table, condition, ordering_of(request)),
            args + [size, (number - 1) * size],
        ).fetchall()
    url = absolute_uri(request)
    return {
        "count": count,
        "next": with_page(url, number + 1) if number < pages else None,
        "previous": None if number == 1 else with_page(url, None if number == 2 else number - 1),
        "results": [serialize(row) for row in rows],
    }


# ---------------------------------------------------------------------------------------------
# Request bodies, validated the way DRF serializers answer: 400 with a message list per field.


class Invalid(Exception):
    def __init__(self, errors):
        super().__init__("invalid")
        self.errors = errors


async def json_body(request: Request):
    try:
        body = await request.json()
    except ValueError as e:
        raise HTTPException(status_code=400, detail="JSON parse error - %s" % e)
    if not isinstance(body, dict):
        raise Invalid({"non_field_errors": ["Invalid data. Expected a dictionary, but got %s." % type(body).__name__]})
    return body


def text_field(body, name, errors, required, max_length=100, allow_blank=False):
    if name not in body:
        if required:
            errors[name] = ["This field is required."]
        return None
    value = body[name]
    if value is None:
        errors[name] = ["This field may not be null."]
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        errors[name] = ["Not a valid string."]
        return None
    value = str(value).strip()
    if not value and not allow_blank:
        errors[name] = ["This field may not be blank."]
    elif len(value) > max_length:
        errors[name] = ["Ensure this field has no more than %d characters." % max_length]
    return value


def integer_field(body, name, errors, required):
    if name not in body:
        if required:
            errors[name] = ["This field is required."]
        return None
    value = body[name]
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        errors[name] = ["A valid integer is required."]
        return None


def department_fields(body, partial):
    errors = {}
    fields = {
        "name": text_field(body, "name", errors, required=not partial),
        "budget": integer_field(body, "budget", errors, required=False),
    }
    if errors:
        raise Invalid(errors)
    return {k: v for k, v in fields.items() if k in body}


def faculty_fields(body, partial):
    errors = {}
    fields = {
        "department_id": integer_field(body, "department", errors, required=not partial),
        "name": text_field(body, "name", errors, required=not partial),
        "title": text_field(body, "title", errors, required=False, allow_blank=True),
    }
    if errors:
        raise Invalid(errors)
    given = {"department_id": "department", "name": "name", "title": "title"}
    return {k: v for k, v in fields.items() if given[k] in body}


# ---------------------------------------------------------------------------------------------
# Purges. Tags as the cachegate configuration beside this file declares them: a department save
# purges "department" (its lists) and "department:<id>"; a faculty save purges "faculty",
# "faculty:<id>" and "department" (department lists and faculty details carry it).


def department_purge(org, pk):
    return resource_payload("department", pk, tenant=org)


def faculty_purge(org, pk):
    payload = resource_payload("faculty", pk, tenant=org)
    payload["tags"].append("department")
    return payload


async def purge(inv: Invalidator, payload):
    """Sends the purge and waits for cachegate's answer. The change is committed already; when
    cachegate could not be told, the client gets 502, so it does not take the write as
    acknowledged by the cache."""
    try:
        await inv.purge(payload, raise_errors=True)
    except (CachegateError, ValueError, TypeError) as e:
        logger.error("saved, but the cache was not purged for %s: %s", payload, e)
        raise HTTPException(status_code=502, detail="saved, but the cache invalidation failed")


# ---------------------------------------------------------------------------------------------
# The application.


@asynccontextmanager
async def lifespan(app):
    await run_in_threadpool(create_database)
    if not os.environ.get("CACHEGATE_WEBHOOK_URL"):
        logger.warning("CACHEGATE_WEBHOOK_URL is not set: writes purge nothing in cachegate")
    logger.info("seeded %s", DB_PATH)
    yield


app = FastAPI(title="cachegate example API", lifespan=lifespan)


@app.exception_handler(Invalid)
async def invalid_body(request: Request, exc: Invalid):
    return JSONResponse(exc.errors, status_code=400)


@app.post("/api/auth/login/")
async def login(request: Request):
    """Username and password for the user's token (DRF's obtain_auth_token)."""
    body = await json_body(request)
    errors = {}
    username = text_field(body, "username", errors, required=True, max_length=150)
    password = text_field(body, "password", errors, required=True, max_length=128)
    if errors:
        raise Invalid(errors)

    def check():
        with closing(connect()) as conn:
            row = conn.execute("SELECT password, token FROM user WHERE username = ?", (username,)).fetchone()
        return row["token"] if row is not None and password_matches(password, row["password"]) else None

    token = await run_in_threadpool(check)
    if token is None:
        raise Invalid({"non_field_errors": ["Unable to log in with provided credentials."]})
    return {"token": token}


@app.api_route("/api/auth/me/", methods=["GET", "HEAD"])
def me(user: User = Depends(current_user)):
    """Who is calling: cachegate's [auth.introspect] reads "org_id" and "id" from here."""
    return {"id": user.id, "username": user.username, "org_id": str(user.org)}


# Departments ---------------------------------------------------------------------------------

DEPARTMENT_COLUMNS = "id, organization_id, name, budget, version"


def department_json(row):
    return {
        "id": row["id"],
        "organization": row["organization_id"],
        "name": row["name"],
        "budget": row["budget"],
        "version": row["version"],
    }


def not_found(model):
    return HTTPException(status_code=404, detail="No %s matches the given query." % model)


def lookup(pk, model):
    """A primary key from the path; anything but an integer matches nothing (404, as in DRF)."""
    try:
        return int(pk)
    except ValueError:
        raise not_found(model) from None


@app.api_route("/api/departments/", methods=["GET", "HEAD"])
def department_list(request: Request, user: User = Depends(current_user)):
    return paginate(
        request, "department", DEPARTMENT_COLUMNS,
        ["organization_id = ?"], [user.org], department_json,
    )


@app.api_route("/api/departments/{pk}/", methods=["GET", "HEAD"])
def department_detail(pk: str, user: User = Depends(current_user)):
    pk = lookup(pk, "Department")
    with closing(connect()) as conn:
        row = conn.execute(
            "SELECT %s FROM department WHERE id = ? AND organization_id = ?" % DEPARTMENT_COLUMNS,
            (pk, user.org),
        ).fetchone()
    if row is None:
        raise not_found("Department")
    return department_json(row)


@app.post("/api/departments/", status_code=201)
async def department_create(
    request: Request, user: User = Depends(current_user), inv: Invalidator = Depends(get_invalidator)
):
    fields = department_fields(await json_body(request), partial=False)

    def create():
        with transaction(write=True) as conn:
            return conn.execute(
                "INSERT INTO department (organization_id, name, budget, version) VALUES (?, ?, ?, 1)"
                " RETURNING " + DEPARTMENT_COLUMNS,
                (user.org, fields["name"], fields.get("budget") or 0),
            ).fetchone()

    row = await run_in_threadpool(create)
    await purge(inv, department_purge(user.org, row["id"]))
    return department_json(row)


def update_department(org, pk, fields):
    """Applies ``fields`` and bumps the version in one statement; None when not the org's."""
    sets = ["%s = ?" % name for name in fields] + ["version = version + 1"]
    with transaction(write=True) as conn:
        return conn.execute(
            "UPDATE department SET %s WHERE id = ? AND organization_id = ? RETURNING %s"
            % (", ".join(sets), DEPARTMENT_COLUMNS),
            list(fields.values()) + [pk, org],
        ).fetchone()


@app.api_route("/api/departments/{pk}/", methods=["PUT", "PATCH"])
async def department_update(
    pk: str, request: Request, user: User = Depends(current_user), inv: Invalidator = Depends(get_invalidator)
):
    pk = lookup(pk, "Department")
    fields = department_fields(await json_body(request), partial=request.method == "PATCH")
    row = await run_in_threadpool(update_department, user.org, pk, fields)
    if row is None:
        raise not_found("Department")
    await purge(inv, department_purge(user.org, pk))
    return department_json(row)


@app.delete("/api/departments/{pk}/", status_code=204)
async def department_delete(
    pk: str, user: User = Depends(current_user), inv: Invalidator = Depends(get_invalidator)
):
    pk = lookup(pk, "Department")
    def delete():
        with transaction(write=True) as conn:
            faculty = [r[0] for r in conn.execute(
                "SELECT id FROM faculty WHERE department_id = ? AND organization_id = ?", (pk, user.org)
            )]
            cur = conn.execute("DELETE FROM department WHERE id = ? AND organization_id = ?", (pk, user.org))
            return faculty if cur.rowcount else None

    faculty = await run_in_threadpool(delete)
    if faculty is None:
        raise not_found("Department")
    # Its faculty members went with it (ON DELETE CASCADE): their entries go too.
    payload = department_purge(user.org, pk)
    if faculty:
        payload["tags"] += ["faculty"] + ["faculty:%d" % f for f in faculty]
    await purge(inv, payload)
    return Response(status_code=204)


# Faculty -------------------------------------------------------------------------------------

FACULTY_COLUMNS = "id, organization_id, department_id, name, title, version"


def faculty_json(row):
    return {
        "id": row["id"],
        "organization": row["organization_id"],
        "department": row["department_id"],
        "name": row["name"],
        "title": row["title"],
        "version": row["version"],
    }


@app.api_route("/api/faculty/", methods=["GET", "HEAD"])
def faculty_list(request: Request, user: User = Depends(current_user)):
    where, args = ["organization_id = ?"], [user.org]
    department = request.query_params.get("department", "")
    if department:
        try:
            args.append(int(department))
        except ValueError:
            raise Invalid({"department": ["Enter a whole number."]})
        where.append("department_id = ?")
    return paginate(request, "faculty", FACULTY_COLUMNS, where, args, faculty_json)


@app.api_route("/api/faculty/{pk}/", methods=["GET", "HEAD"])
def faculty_detail(pk: str, user: User = Depends(current_user)):
    pk = lookup(pk, "Faculty")
    with closing(connect()) as conn:
        row = conn.execute(
            "SELECT %s FROM faculty WHERE id = ? AND organization_id = ?" % FACULTY_COLUMNS, (pk, user.org)
        ).fetchone()
    if row is None:
        raise not_found("Faculty")
    return faculty_json(row)


def check_department(conn, org, fields):
    """A faculty member's department must be one of the caller's organization."""
    pk = fields.get("department_id")
    if pk is None:
        return
    found = conn.execute("SELECT 1 FROM department WHERE id = ? AND organization_id = ?", (pk, org)).fetchone()
    if found is None:
        raise Invalid({"department": ['Invalid pk "%s" - object does not exist.' % pk]})


@app.post("/api/faculty/", status_code=201)
async def faculty_create(
    request: Request, user: User = Depends(current_user), inv: Invalidator = Depends(get_invalidator)
):
    fields = faculty_fields(await json_body(request), partial=False)

    def create():
        with transaction(write=True) as conn:
            check_department(conn, user.org, fields)
            return conn.execute(
                "INSERT INTO faculty (organization_id, department_id, name, title, version)"
                " VALUES (?, ?, ?, ?, 1) RETURNING " + FACULTY_COLUMNS,
                (user.org, fields["department_id"], fields["name"], fields.get("title") or ""),
            ).fetchone()

    row = await run_in_threadpool(create)
    await purge(inv, faculty_purge(user.org, row["id"]))
    return faculty_json(row)


def update_faculty(org, pk, fields):
    sets = ["%s = ?" % name for name in fields] + ["version = version + 1"]
    with transaction(write=True) as conn:
        check_department(conn, org, fields)
        return conn.execute(
            "UPDATE faculty SET %s WHERE id = ? AND organization_id = ? RETURNING %s"
            % (", ".join(sets), FACULTY_COLUMNS),
            list(fields.values()) + [pk, org],
        ).fetchone()


@app.api_route("/api/faculty/{pk}/", methods=["PUT", "PATCH"])
async def faculty_update(
    pk: str, request: Request, user: User = Depends(current_user), inv: Invalidator = Depends(get_invalidator)
):
    pk = lookup(pk, "Faculty")
    fields = faculty_fields(await json_body(request), partial=request.method == "PATCH")
    row = await run_in_threadpool(update_faculty, user.org, pk, fields)
    if row is None:
        raise not_found("Faculty")
    await purge(inv, faculty_purge(user.org, pk))
    return faculty_json(row)


@app.delete("/api/faculty/{pk}/", status_code=204)
async def faculty_delete(
    pk: str, user: User = Depends(current_user), inv: Invalidator = Depends(get_invalidator)
):
    pk = lookup(pk, "Faculty")
    def delete():
        with transaction(write=True) as conn:
            return conn.execute(
                "DELETE FROM faculty WHERE id = ? AND organization_id = ?", (pk, user.org)
            ).rowcount

    if not await run_in_threadpool(delete):
        raise not_found("Faculty")
    await purge(inv, faculty_purge(user.org, pk))
    return Response(status_code=204)


# Direct writes -------------------------------------------------------------------------------
# Called on the backend's own port, not through cachegate: they stand for writes cachegate never
# sees (an admin screen, a job), so only the purge keeps its cache right.


def bump(table, org, pk):
    with transaction(write=True) as conn:
        return conn.execute(
            "UPDATE %s SET version = version + 1 WHERE id = ? AND organization_id = ? RETURNING id, version"
            % table,
            (pk, org),
        ).fetchone()


@app.post("/api/direct/departments/{pk}/bump/")
async def department_bump(pk: str, user: User = Depends(current_user), inv: Invalidator = Depends(get_invalidator)):
    pk = lookup(pk, "Department")
    row = await run_in_threadpool(bump, "department", user.org, pk)
    if row is None:
        raise not_found("Department")
    await purge(inv, department_purge(user.org, pk))
    return {"id": row["id"], "version": row["version"]}


@app.post("/api/direct/faculty/{pk}/bump/")
async def faculty_bump(pk: str, user: User = Depends(current_user), inv: Invalidator = Depends(get_invalidator)):
    pk = lookup(pk, "Faculty")
    row = await run_in_threadpool(bump, "faculty", user.org, pk)
    if row is None:
        raise not_found("Faculty")
    await purge(inv, faculty_purge(user.org, pk))
    return {"id": row["id"], "version": row["version"]}
