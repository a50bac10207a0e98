#!/usr/bin/env bash
# End-to-end check of cachegate in front of an example backend:
#
#   bash deploy/example-backend/e2e/run.sh <django|fastapi> [check.py flags, e.g. --duration 30]
#
# Makes (or reuses) a virtualenv with the example's pinned requirements, starts the backend on a
# free loopback port (gunicorn for django, uvicorn app:app for fastapi) with a fresh seeded SQLite
# file, starts cachegate (${CACHEGATE_BIN:-target/debug/cachegate}, built when missing) with a
# copy of the example's cachegate.toml on free ports (rewrite_config.py: its listeners, the admin
# one included, and its upstream), runs smoke.py (deterministic checks on the empty cache), then
# check.py (the concurrent workload and its consistency checks), and stops what it started.
# Exits non-zero on any failed check or violation.
#
# The backend gets EXAMPLE_DB_PATH (a fresh SQLite file to seed), CACHEGATE_WEBHOOK_URL,
# CACHEGATE_WEBHOOK_SECRET and CACHEGATE_WEBHOOK_RAISE=1 (a purge that cannot be sent fails the
# write; the fastapi example always does so, with a 502). The fastapi example is started as
# `uvicorn app:app` in its folder and seeds at start-up.
#
# Environment: CACHEGATE_BIN, CACHEGATE_E2E_VENV_DIR (where the virtualenvs are kept, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/cachegate-e2e), PYTHON (default python3).
set -euo pipefail

kind="${1:-}"
case "$kind" in
  django | fastapi) shift ;;
  *) echo "usage: $0 <django|fastapi> [check.py flags]" >&2; exit 64 ;;
esac

root="$(cd "$(dirname "$0")/../../.." && pwd)"
example="$root/deploy/example-backend/$kind"
e2e="$root/deploy/example-backend/e2e"
python="${PYTHON:-python3}"
[ -d "$example" ] || { echo "no example backend at $example" >&2; exit 64; }

work="$(mktemp -d "${TMPDIR:-/tmp}/cachegate-e2e-$kind.XXXXXX")"
pids=()
cleanup() {
  status=$?
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    for log in "$work"/*.log; do
      [ -f "$log" ] || continue
      echo "== last lines of $(basename "$log")" >&2
      tail -n 40 "$log" >&2
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- the virtualenv, kept between runs and keyed by the requirements it holds
requirements="$example/requirements.txt"
digest="$("$python" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest()[:16])' "$requirements")"
venv_root="${CACHEGATE_E2E_VENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cachegate-e2e}"
venv="$venv_root/$kind-$digest"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.installed" ]; then
  echo "== virtualenv $venv"
  rm -rf "$venv"
  mkdir -p "$venv_root"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  touch "$venv/.installed"
fi

# -- cachegate
bin="${CACHEGATE_BIN:-$root/target/debug/cachegate}"
if [ ! -x "$bin" ]; then
  echo "== cargo build"
  (cd "$root" && cargo build --quiet)
fi
[ -x "$bin" ] || { echo "no cachegate binary at $bin: set CACHEGATE_BIN" >&2; exit 1; }

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
backend_port="$(free_port)"
proxy_port="$(free_port)"
while [ "$proxy_port" = "$backend_port" ]; do proxy_port="$(free_port)"; done
backend="http://127.0.0.1:$backend_port"
proxy="http://127.0.0.1:$proxy_port"

export CACHEGATE_WEBHOOK_SECRET CACHEGATE_KEY_SECRET
CACHEGATE_WEBHOOK_SECRET="$("$python" -c 'import secrets; print(secrets.token_hex(32))')"
CACHEGATE_KEY_SECRET="$("$python" -c 'import secrets; print(secrets.token_hex(32))')"
export CACHEGATE_WEBHOOK_URL="$proxy/_cachegate/invalidate"
# A purge that cannot be sent fails the write that made it, so it cannot go unnoticed.
export CACHEGATE_WEBHOOK_RAISE=1
export EXAMPLE_DB_PATH="$work/db.sqlite3"

# The example's configuration with its listeners and its upstream moved to free ports;
# everything else is used as shipped (rewrite_config.py). An [admin] listener gets a free port
# too; when its token comes from a variable that is unset here, the variable gets a random token,
# so that check.py can print cachegate's own counters (GET /stats) at the end.
admin_port="$(free_port)"
while [ "$admin_port" = "$proxy_port" ] || [ "$admin_port" = "$backend_port" ]; do admin_port="$(free_port)"; done
admin_token_env="$("$python" "$e2e/rewrite_config.py" "$example/cachegate.toml" "$work/cachegate.toml" \
  "$proxy_port" "$backend_port" "$admin_port")"
admin_flags=()
if [ -n "$admin_token_env" ]; then
  if [ -z "${!admin_token_env:-}" ]; then
    export "$admin_token_env=$("$python" -c 'import secrets; print(secrets.token_hex(32))')"
  fi
  admin_flags=(--admin "http://127.0.0.1:$admin_port" --admin-token-env "$admin_token_env")
fi
"$bin" check --config "$work/cachegate.toml" >/dev/null

# -- the backend, seeded into a fresh database
echo "== $kind backend on $backend"
case "$kind" in
  django)
    (cd "$example" && "$venv/bin/python" manage.py migrate --noinput >"$work/migrate.log" 2>&1)
    (cd "$example" && "$venv/bin/python" manage.py seed --reset)
    "$venv/bin/gunicorn" exampleproject.wsgi:application --chdir "$example" \
      --bind "127.0.0.1:$backend_port" --workers 2 --threads 4 --graceful-timeout 5 --no-control-socket \
      --access-logfile - >"$work/backend.log" 2>&1 &
    pids+=("$!")
    ;;
  fastapi)
    # The app seeds its fresh database (EXAMPLE_DB_PATH) at start-up.
    (cd "$example" && exec "$venv/bin/python" -m uvicorn app:app --host 127.0.0.1 --port "$backend_port" \
      --log-level warning) >"$work/backend.log" 2>&1 &
    pids+=("$!")
    ;;
esac

echo "== cachegate on $proxy"
"$bin" serve --config "$work/cachegate.toml" >"$work/cachegate.log" 2>&1 &
pids+=("$!")

# -- readiness: any HTTP answer from both (an anonymous /api/auth/me/ is a 401), within 60 s
wait_http() {
  local url="$1" deadline=$((SECONDS + 60))
  until "$python" -c 'import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass' "$url" 2>/dev/null; do
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { echo "process $pid exited before $url answered" >&2; exit 1; }
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$url did not answer within 60 s" >&2
      exit 1
    fi
    sleep 0.2
  done
}
wait_http "$backend/api/auth/me/"
wait_http "$proxy/api/auth/me/"

echo "== smoke.py"
BACKEND="$backend" PROXY="$proxy" "$python" "$e2e/smoke.py"

echo "== check.py"
"$python" "$e2e/check.py" --proxy "$proxy" --backend "$backend" ${admin_flags[@]+"${admin_flags[@]}"} "$@"
