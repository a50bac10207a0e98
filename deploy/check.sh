#!/usr/bin/env bash
# Checks the files under deploy/ against the code: every YAML and JSON file parses; the proxy.toml
# in the Kubernetes ConfigMap and the one docker-compose.yml mounts pass `cachegate check`; every
# metric the Grafana dashboard queries exists in a real /metrics scrape; the probes and the
# image's health check name endpoints the admin listener answers without a token; the systemd
# unit passes `systemd-analyze verify` where that tool exists. Run by .ci/run.
# Usage: bash deploy/check.sh   (CACHEGATE_BIN: the binary to use, built when not given)
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

bin="${CACHEGATE_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --quiet --bin cachegate
  bin="target/debug/cachegate"
fi
[ -x "$bin" ] || { echo "no cachegate binary at $bin" >&2; exit 1; }

echo "-- python with PyYAML"
python=python3
if ! python3 -c 'import yaml' 2>/dev/null; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check pyyaml
  python="$work/venv/bin/python"
fi

echo "-- YAML and JSON parse; the configs they hold are extracted"
"$python" - "$work" <<'PY'
import json, pathlib, sys, yaml

work = pathlib.Path(sys.argv[1])
deploy = pathlib.Path("deploy")
yamls = sorted(p for p in deploy.rglob("*") if p.suffix in (".yml", ".yaml"))
jsons = sorted(p for p in deploy.rglob("*.json"))
docs = {}
for path in yamls:
    docs[path] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    print(f"ok  {path} ({len(docs[path])} document(s))")
for path in jsons:
    json.loads(path.read_text())
    print(f"ok  {path}")

# The proxy.toml of the ConfigMap.
maps = [d for ds in docs.values() for d in ds if d.get("kind") == "ConfigMap"]
assert maps, "no ConfigMap under deploy/k8s/"
for m in maps:
    name = m["metadata"]["name"]
    (work / f"configmap-{name}.toml").write_text(m["data"]["proxy.toml"])

# The config the compose file mounts at the path the cachegate service reads.
compose = docs[deploy / "docker-compose.yml"][0]
service = compose["services"]["cachegate"]
config = service["command"][service["command"].index("--config") + 1]
mounts = [v.split(":") for v in service.get("volumes", [])]
sources = [src for src, dst, *_ in mounts if dst == config]
assert sources, f"docker-compose.yml mounts nothing at {config}"
(work / "compose.toml").write_text((deploy / sources[0]).read_text())

# Probes and the image's health check ask endpoints the admin listener serves without a token.
admin_src = pathlib.Path("src/admin.rs").read_text()
tokenless = {"/healthz", "/readyz"}
for path in tokenless:
    assert f'"{path}")' in admin_src, f"{path} is not routed in src/admin.rs"
deployment = next(d for ds in docs.values() for d in ds if d.get("kind") == "Deployment")
for container in deployment["spec"]["template"]["spec"]["containers"]:
    for probe in ("readinessProbe", "livenessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert path in tokenless, f"{probe} asks {path}, which needs the token"
        assert container[probe]["httpGet"]["port"] in ("admin", 9090), probe
dockerfile = (deploy / "Dockerfile").read_text()
assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile, "the image checks /healthz"

# The metric names the dashboard's queries use.
import re
dashboard = json.loads((deploy / "grafana/cachegate.json").read_text())
names = set()
for panel in dashboard["panels"]:
    for target in panel.get("targets", []):
        names.update(re.findall(r"\bcachegate_[a-z0-9_]+", target["expr"]))
(work / "dashboard-metrics.txt").write_text("\n".join(sorted(names)) + "\n")
print(f"ok  the dashboard queries {len(names)} metric names")
PY

echo "-- cachegate check on the configs deploy/ ships"
for config in "$work"/configmap-*.toml "$work/compose.toml"; do
  "$bin" check --config "$config" >"$work/check.out" || { cat "$work/check.out"; exit 1; }
  echo "ok  $(tail -n 1 "$work/check.out")"
done

echo "-- the dashboard's metrics exist in a real /metrics scrape"
ports=$(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()')
read -r proxy_port admin_port dead_port <<<"$ports"
cat >"$work/scrape.toml" <<EOF
[server]
listen = "127.0.0.1:$proxy_port"
shutdown_grace = "1s"
[upstream]
# Nothing listens here: the one request below is answered 502, which is enough to scrape.
url = "http://127.0.0.1:$dead_port"
connect_timeout = "1s"
[admin]
listen = "127.0.0.1:$admin_port"
token_env = "CACHEGATE_CHECK_ADMIN_TOKEN"
[log]
level = "warn"
[[route]]
path = "/api/{*rest}"
EOF
export CACHEGATE_CHECK_ADMIN_TOKEN
CACHEGATE_CHECK_ADMIN_TOKEN="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
"$bin" serve --config "$work/scrape.toml" 2>"$work/serve.log" &
pid=$!
up=no
for _ in $(seq 100); do
  if curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$admin_port/healthz"; then up=yes; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
[ "$up" = yes ] || { echo "cachegate did not come up:" >&2; cat "$work/serve.log" >&2; exit 1; }
curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$proxy_port/api/probe" || true
unauthorized=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$admin_port/metrics")
[ "$unauthorized" = 401 ] || { echo "/metrics answered $unauthorized without the token" >&2; exit 1; }
curl -fs --max-time 5 -H "Authorization: Bearer $CACHEGATE_CHECK_ADMIN_TOKEN" \
  "http://127.0.0.1:$admin_port/metrics" >"$work/metrics.txt"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
python3 - "$work/metrics.txt" "$work/dashboard-metrics.txt" <<'PY'
import sys
exposed = set()
for line in open(sys.argv[1]):
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split()
        exposed.add(name)
        if kind == "histogram":
            exposed.update(name + s for s in ("_bucket", "_sum", "_count"))
wanted = [n for n in open(sys.argv[2]).read().split()]
missing = [n for n in wanted if n not in exposed]
if missing:
    sys.exit(f"the dashboard queries metrics /metrics does not expose: {', '.join(missing)}")
print(f"ok  all {len(wanted)} metric names of the dashboard are exposed ({len(exposed)} names in all)")
PY

echo "-- systemd unit"
if command -v systemd-analyze >/dev/null; then
  # The unit names /usr/local/bin/cachegate, where it is installed; verify a copy that names the
  # binary just built, so the check does not depend on an installation.
  unit="$work/cachegate.service"
  sed "s#/usr/local/bin/cachegate#$(realpath "$bin")#g" deploy/systemd/cachegate.service >"$unit"
  if ! systemd-analyze verify "$unit" 2>"$work/verify.log"; then
    cat "$work/verify.log" >&2; exit 1
  fi
  # Warnings that do not fail the verification are still shown.
  grep -v '^$' "$work/verify.log" || true
  echo "ok  deploy/systemd/cachegate.service"
else
  echo "skip: systemd-analyze is not installed (deploy/systemd/cachegate.service not verified)"
fi
echo "deploy/: ok"
