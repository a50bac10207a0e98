#!/usr/bin/env bash
# The shared Redis tier: hits answered by Redis beside hits answered by the memory tier and the
# origin answering directly (the ceiling), in one run, interleaved; then the cross-instance
# purge latency. Usage: bash bench/shared.sh [seconds]
#
#   origin     the benchmark origin directly: the ceiling
#   memory     cachegate with bench/proxy.toml: memory-tier hits
#   redis      cachegate with [redis] and a memory tier too small to hold the entry: every hit
#              is a Redis round trip (an entry's lookup, decode and copy)
#   tiered     cachegate with [redis] and the default memory tier: memory copies of Redis
#              entries, the normal deployment
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${CONNS:-32}
rounds=${ROUNDS:-3}
purges=${PURGES:-500}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
cargo build --release --quiet --bin cachegate --bin cachegate-bench-origin --bin cachegate-bench-shared
out=bench/out/shared; mkdir -p "$out"
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Seven free loopback ports, all bound at once (so no two are the same), then released.
read -r p_origin p_redis p_memory p_rtier p_tiered a_rtier a_tiered < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
PY
)

redis-server --port "$p_redis" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
  >"$out/redis.log" 2>&1 & pids+=($!)
target/release/cachegate-bench-origin --listen "127.0.0.1:$p_origin" --threads 1 --slow-ms 200 \
  2>"$out/origin.log" & pids+=($!)

# The configurations: bench/proxy.toml on other ports; the two Redis ones add [redis] and an
# admin API whose /stats tells which tier answered.
export BENCH_JWT_SECRET=bench-hs256-secret-of-at-least-32-bytes
export CACHEGATE_ADMIN_TOKEN=bench-admin-token
base() { # listen-port
  sed -e "s|^listen = \"127.0.0.1:18080\"|listen = \"127.0.0.1:$1\"|" \
      -e "s|^url = \"http://127.0.0.1:18000\"|url = \"http://127.0.0.1:$p_origin\"|" bench/proxy.toml
}
base "$p_memory" >"$tmp/memory.toml"
# A memory tier of 1 KiB holds no entry of the origin's 1 KiB answer (an entry weighs its body
# plus about 1.2 KB): lookups there miss, and the Redis hit is not copied into memory.
{ base "$p_rtier" | sed '/^\[cache\]$/a max_memory = "1KiB"\nmax_object_size = "1000B"'
  printf '\n[redis]\nurl = "redis://127.0.0.1:%s/0"\n\n[admin]\nlisten = "127.0.0.1:%s"\n' "$p_redis" "$a_rtier"
} >"$tmp/redis.toml"
{ base "$p_tiered"
  printf '\n[redis]\nurl = "redis://127.0.0.1:%s/0"\n\n[admin]\nlisten = "127.0.0.1:%s"\n' "$p_redis" "$a_tiered"
} >"$tmp/tiered.toml"
for name in memory redis tiered; do
  cp "$tmp/$name.toml" "$out/$name.toml"
  target/release/cachegate serve --config "$tmp/$name.toml" 2>"$out/$name.log" & pids+=($!)
done

up=no
for _ in $(seq 100); do
  if [ "$(redis-cli -p "$p_redis" ping 2>/dev/null)" = PONG ]; then up=yes; break; fi
  sleep 0.1
done
[ "$up" = yes ] || { echo "redis-server did not come up:" >&2; cat "$out/redis.log" >&2; exit 1; }
for port in "$p_origin" "$p_memory" "$p_rtier" "$p_tiered"; do
  up=no
  for _ in $(seq 100); do
    if curl -fs -o /dev/null "http://127.0.0.1:$port/api/warm/" -H 'X-Org-Id: 1'; then up=yes; break; fi
    sleep 0.1
  done
  if [ "$up" != yes ]; then
    echo "server on port $port did not come up:" >&2; tail -n 20 "$out"/*.log >&2; exit 1
  fi
done

# Every instance is addressed by one host, as behind a load balancer (the host is part of the
# key): the tiered instance fills Redis, the Redis-tier instance then answers from it.
hdr_host='Host: bench.test'
hdr_org='X-Org-Id: 42'
path=/api/faculty/
cache_status() { # port
  curl -fs -o /dev/null -D - "http://127.0.0.1:$1$path" -H "$hdr_host" -H "$hdr_org" \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="cache-status" {print $2}'
}
expect() { # port expected what
  local got
  got=$(cache_status "$1")
  if [ "$got" != "$2" ]; then
    echo "FAIL: $3 answered Cache-Status \"$got\", expected \"$2\"" >&2
    tail -n 20 "$out"/*.log >&2
    exit 1
  fi
  echo "$3: Cache-Status: $got"
}
expect "$p_tiered" "cachegate; fwd=miss; stored" "tiered, first request"
expect "$p_tiered" "cachegate; hit" "tiered, second request"
expect "$p_rtier" "cachegate; hit; detail=shared" "redis, first request"
expect "$p_rtier" "cachegate; hit; detail=shared" "redis, second request"
expect "$p_memory" "cachegate; fwd=miss; stored" "memory, first request"
expect "$p_memory" "cachegate; hit" "memory, second request"

stats() { # admin-port -> "hits shared_hits misses shared_errors"
  { curl -fs "http://127.0.0.1:$1/stats" -H "Authorization: Bearer $CACHEGATE_ADMIN_TOKEN" \
      || echo "FAIL: /stats on port $1 did not answer" >&2; } \
    | python3 -c 'import json, sys; d = json.load(sys.stdin); s = d.get("shared") or {}
print(d["hits"], d["shared_hits"], d["misses"], s.get("errors", 0))'
}
measure() { # name port -> "rps p50 p99 requests"
  wrk -t1 -c"$conns" -d"${secs}s" --latency -H "$hdr_host" -H "$hdr_org" \
    "http://127.0.0.1:$2$path" >"$out/$1.txt"
  awk '/Requests\/sec/ {rps=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2}
       / requests in / {n=$1} END {print rps, p50, p99, n}' "$out/$1.txt"
}
need() { # values that must not be empty
  for v; do
    [ -n "$v" ] || { echo "FAIL: a measurement gave no figures; see $out/" >&2; exit 1; }
  done
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Warm every server (connections, allocator, CPU frequency) before anything is recorded.
for port in "$p_origin" "$p_memory" "$p_rtier" "$p_tiered"; do
  wrk -t1 -c"$conns" -d2s -H "$hdr_host" -H "$hdr_org" "http://127.0.0.1:$port$path" >/dev/null
done

printf '%-6s %-28s %12s %10s %10s %10s\n' round server req/s p50 p99 '/ memory'
r_ratios=(); t_ratios=(); c_ratios=()
for r in $(seq "$rounds"); do
  read -r o_rps o_p50 o_p99 _ < <(measure origin "$p_origin")
  read -r m_rps m_p50 m_p99 _ < <(measure memory "$p_memory")
  read -r h0 s0 x0 e0 < <(stats "$a_rtier")
  read -r r_rps r_p50 r_p99 r_n < <(measure redis "$p_rtier")
  read -r h1 s1 x1 e1 < <(stats "$a_rtier")
  read -r t_rps t_p50 t_p99 _ < <(measure tiered "$p_tiered")
  need "$o_rps" "$m_rps" "$r_rps" "$t_rps" "$h0" "$h1" "$s0" "$s1" "$x0" "$x1"
  printf '%-6s %-28s %12s %10s %10s %10s\n' "$r" "origin directly (ceiling)" "$o_rps" "$o_p50" "$o_p99" "$(ratio "$o_rps" "$m_rps")"
  printf '%-6s %-28s %12s %10s %10s %10s\n' "$r" "memory-tier hits" "$m_rps" "$m_p50" "$m_p99" 1.00
  printf '%-6s %-28s %12s %10s %10s %10s\n' "$r" "Redis-tier hits" "$r_rps" "$r_p50" "$r_p99" "$(ratio "$r_rps" "$m_rps")"
  printf '%-6s %-28s %12s %10s %10s %10s\n' "$r" "[redis] with memory copies" "$t_rps" "$t_p50" "$t_p99" "$(ratio "$t_rps" "$m_rps")"
  # Every request of the Redis-tier measurement must have been a hit answered by Redis.
  hits=$((h1 - h0)); shared=$((s1 - s0)); misses=$((x1 - x0)); errors=$((e1 - e0))
  echo "       Redis-tier instance: $shared of $hits hits answered by Redis, $misses misses, $errors Redis errors ($r_n requests)"
  if [ "$hits" -eq 0 ] || [ "$shared" -ne "$hits" ] || [ "$misses" -ne 0 ]; then
    echo "FAIL: the Redis-tier measurement was not all Redis hits" >&2; exit 1
  fi
  r_ratios+=("$(ratio "$r_rps" "$m_rps")")
  t_ratios+=("$(ratio "$t_rps" "$m_rps")")
  c_ratios+=("$(ratio "$m_rps" "$o_rps")")
done
echo "Redis-tier hits / memory-tier hits, per round: ${r_ratios[*]} (median $(median "${r_ratios[@]}"))"
echo "[redis] with memory copies / memory-tier hits, per round: ${t_ratios[*]} (median $(median "${t_ratios[@]}"))"
echo "memory-tier hits / ceiling, per round: ${c_ratios[*]} (median $(median "${c_ratios[@]}"))"

# Cross-instance purge latency: two instances in one process over the same Redis.
target/release/cachegate-bench-shared --redis "redis://127.0.0.1:$p_redis/0" --iterations "$purges"
