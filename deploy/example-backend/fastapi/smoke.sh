#!/usr/bin/env bash
# Smoke test of the FastAPI example behind cachegate, run by hand:
#
#   bash deploy/example-backend/fastapi/smoke.sh
#
# Starts uvicorn and cachegate on free loopback ports (cachegate with a copy of cachegate.toml
# whose ports are replaced), checks hits, purges after writes through the proxy and directly on
# the backend, tenant isolation and refusal of anonymous callers, then stops both.
#
# Environment: CACHEGATE (the binary; default target/debug/cachegate, built when missing),
# VENV (a virtualenv to use; default .venv here, created from requirements.txt when missing
# or out of date), KEEP_LOGS=1 (print where the logs are instead of deleting them).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${KEEP_LOGS:-}" == 1 ]]; then
        echo "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "smoke: $*" >&2
    for log in "$WORK"/*.log; do
        [[ -f "$log" ]] || continue
        echo "--- $log (last 30 lines)" >&2
        tail -n 30 "$log" >&2
    done
    exit 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits up to 30 s for a URL to answer at all (any status).
wait_for() {
    local url="$1" name="$2" pid="$3" i
    for i in $(seq 1 300); do
        if curl -s -o /dev/null --max-time 1 "$url"; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || fail "$name exited before answering"
        sleep 0.1
    done
    fail "$name did not answer within 30 s"
}

# The binary.
CACHEGATE="${CACHEGATE:-$ROOT/target/debug/cachegate}"
if [[ ! -x "$CACHEGATE" ]]; then
    (cd "$ROOT" && cargo build --quiet)
fi

# The virtualenv, reused while requirements.txt is unchanged.
VENV="${VENV:-$HERE/.venv}"
STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/uvicorn" || "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
    echo "$WANT" > "$STAMP"
fi

BACKEND_PORT="$(free_port)"
PROXY_PORT="$(free_port)"
ADMIN_PORT="$(free_port)"
export CACHEGATE_WEBHOOK_SECRET="smoke-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export CACHEGATE_KEY_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export CACHEGATE_ADMIN_TOKEN="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"

# cachegate with the example's config, ports replaced.
sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$PROXY_PORT/" \
    -e "s/127\.0\.0\.1:8000/127.0.0.1:$BACKEND_PORT/" \
    -e "s/127\.0\.0\.1:9090/127.0.0.1:$ADMIN_PORT/" \
    "$HERE/cachegate.toml" > "$WORK/cachegate.toml"
grep -q "127.0.0.1:$PROXY_PORT" "$WORK/cachegate.toml" || fail "could not set the proxy port"
grep -q "127.0.0.1:$BACKEND_PORT" "$WORK/cachegate.toml" || fail "could not set the backend port"
"$CACHEGATE" check --config "$WORK/cachegate.toml" > "$WORK/check.log" 2>&1 || fail "cachegate check refused the config"

# The backend, sending its purges to cachegate.
(
    cd "$HERE"
    EXAMPLE_DB_PATH="$WORK/example.sqlite3" \
    CACHEGATE_WEBHOOK_URL="http://127.0.0.1:$PROXY_PORT/_cachegate/invalidate" \
        exec "$VENV/bin/uvicorn" app:app --host 127.0.0.1 --port "$BACKEND_PORT" --log-level warning
) > "$WORK/backend.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$BACKEND_PORT/api/auth/me/" backend "${PIDS[-1]}"

"$CACHEGATE" serve --config "$WORK/cachegate.toml" > "$WORK/cachegate.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$ADMIN_PORT/healthz" cachegate "${PIDS[-1]}"

BACKEND="http://127.0.0.1:$BACKEND_PORT" PROXY="http://127.0.0.1:$PROXY_PORT" \
ADMIN="http://127.0.0.1:$ADMIN_PORT" python3 "$HERE/smoke_checks.py" || fail "checks failed"
echo "smoke: ok"
