#!/usr/bin/env bash
# Hit throughput and latency through cachegate vs the same origin answering directly (the ceiling),
# measured in one run, interleaved, plus the stampede count, and the cost of a hit with /metrics
# on against the same build with [admin] metrics = false. Usage: bash bench/run.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${CONNS:-32}
rounds=${ROUNDS:-3}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --bin cachegate --bin cachegate-bench-origin
out=bench/out; mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
# One core for the server under test, one for wrk, as far as two cores allow: both servers get one
# worker thread and the measurement alternates between them, so noise hits both alike.
target/release/cachegate-bench-origin --listen 127.0.0.1:18000 --threads 1 --slow-ms 200 2>"$out/origin.log" & pids+=($!)
export BENCH_JWT_SECRET=bench-hs256-secret-of-at-least-32-bytes
token=$(python3 - <<'PY'
import base64, hashlib, hmac, json, os, time
enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = enc(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = enc(json.dumps({"org": "42", "sub": "bench", "exp": int(time.time()) + 3600}).encode())
sig = hmac.new(os.environ["BENCH_JWT_SECRET"].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
print(f"{head}.{body}.{enc(sig)}")
PY
)
target/release/cachegate serve --config bench/proxy.toml 2>"$out/cachegate.log" & pids+=($!)
# The same config with the per-request metrics off, on ports of its own.
sed -e 's/127.0.0.1:18080/127.0.0.1:18081/' -e 's/127.0.0.1:19090"/127.0.0.1:19091"\nmetrics = false/' \
  bench/proxy.toml >"$out/proxy-metrics-off.toml"
grep -q '^metrics = false' "$out/proxy-metrics-off.toml"
target/release/cachegate serve --config "$out/proxy-metrics-off.toml" 2>"$out/cachegate-metrics-off.log" & pids+=($!)
for port in 18000 18080 18081; do
  up=no
  for _ in $(seq 100); do
    if curl -fs -o /dev/null "http://127.0.0.1:$port/api/warm/" -H 'X-Org-Id: 1'; then up=yes; break; fi
    sleep 0.1
  done
  if [ "$up" != yes ]; then
    echo "server on port $port did not come up:" >&2; cat "$out"/*.log >&2; exit 1
  fi
done
curl -fs -o /dev/null -D - http://127.0.0.1:18080/api/faculty/ -H 'X-Org-Id: 42' | grep -i cache-status
curl -fs -o /dev/null -D - http://127.0.0.1:18080/api/faculty/ -H 'X-Org-Id: 42' | grep -i cache-status

measure() { # name url [header] -> "rps p50 p99"
  wrk -t1 -c"$conns" -d"${secs}s" --latency -H "${3:-X-Org-Id: 42}" "$2" >"$out/$1.txt"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$out/$1.txt")
  p50=$(awk '$1=="50%" {print $2}' "$out/$1.txt")
  p99=$(awk '$1=="99%" {print $2}' "$out/$1.txt")
  echo "$rps $p50 $p99"
}
# Warm both servers (connections, allocator, CPU frequency) before anything is recorded.
for port in 18000 18080 18081; do
  wrk -t1 -c"$conns" -d2s -H 'X-Org-Id: 42' "http://127.0.0.1:$port/api/faculty/" >/dev/null
done
curl -fs -o /dev/null -D - http://127.0.0.1:18080/jwt/faculty/ -H "Authorization: Bearer $token" | grep -i cache-status
printf '%-6s %-10s %12s %10s %10s\n' round server req/s p50 p99
ratios=(); jwt_costs=(); metrics_costs=()
for r in $(seq "$rounds"); do
  read -r o_rps o_p50 o_p99 < <(measure origin "http://127.0.0.1:18000/api/faculty/")
  read -r c_rps c_p50 c_p99 < <(measure cachegate "http://127.0.0.1:18080/api/faculty/")
  printf '%-6s %-10s %12s %10s %10s\n' "$r" origin "$o_rps" "$o_p50" "$o_p99"
  printf '%-6s %-10s %12s %10s %10s\n' "$r" cachegate "$c_rps" "$c_p50" "$c_p99"
  read -r j_rps j_p50 j_p99 < <(measure jwt "http://127.0.0.1:18080/jwt/faculty/" "Authorization: Bearer $token")
  printf '%-6s %-10s %12s %10s %10s\n' "$r" "jwt hit" "$j_rps" "$j_p50" "$j_p99"
  read -r m_rps m_p50 m_p99 < <(measure metrics-off "http://127.0.0.1:18081/api/faculty/")
  printf '%-6s %-10s %12s %10s %10s\n' "$r" "no metrics" "$m_rps" "$m_p50" "$m_p99"
  ratios+=("$(awk -v c="$c_rps" -v o="$o_rps" 'BEGIN {printf "%.2f", c/o}')")
  # Cost of a hit with metrics on relative to off: off throughput / on throughput.
  metrics_costs+=("$(awk -v c="$c_rps" -v m="$m_rps" 'BEGIN {printf "%.3f", m/c}')")
  # Cost of a hit = 1/throughput, so the JWT hit's cost relative to the plain one is c/j.
  jwt_costs+=("$(awk -v c="$c_rps" -v j="$j_rps" 'BEGIN {printf "%.2f", c/j}')")
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "hit throughput / ceiling, per round: ${ratios[*]} (median $median)"
jmedian=$(printf '%s\n' "${jwt_costs[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "JWT-verified hit cost / plain hit cost, per round: ${jwt_costs[*]} (median $jmedian)"
mmedian=$(printf '%s\n' "${metrics_costs[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "hit cost with metrics on / off, per round: ${metrics_costs[*]} (median $mmedian)"

# Stampede: 200 concurrent requests on a cold key behind a 200 ms origin.
key="/slow/stampede-$RANDOM$RANDOM/"
seq 200 | xargs -P 200 -I{} curl -fs -o /dev/null -H 'X-Org-Id: 42' "http://127.0.0.1:18080$key"
echo "stampede: 200 concurrent requests on a cold key -> $(curl -fs "http://127.0.0.1:18000/__count?path=$key") origin request(s)"
