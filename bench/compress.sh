#!/usr/bin/env bash
# Compression against hits, in one run: the CPU time of one hit through cachegate (1 KiB and
# 16 KiB JSON bodies, and the 16 KiB body stored gzip-encoded as a compressing backend sent it),
# then bench/compress.rs: the time to compress or decompress those bodies once, as multiples of
# that hit, and the memory of one stored variant against three. Usage: bash bench/compress.sh [secs]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${CONNS:-32}
rounds=${ROUNDS:-3}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --bin cachegate --bin cachegate-bench-origin --bin cachegate-bench-compress
out=bench/out; mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
target/release/cachegate-bench-origin --listen 127.0.0.1:18100 --threads 1 2>"$out/compress-origin.log" & pids+=($!)
# bench/proxy.toml on ports of its own, without the JWT section (no secret needed here).
sed -e 's/127.0.0.1:18080/127.0.0.1:18180/' -e 's/127.0.0.1:18000/127.0.0.1:18100/' \
  -e 's/127.0.0.1:19090/127.0.0.1:19190/' -e '/^\[auth.jwt\]/,/^$/d' \
  bench/proxy.toml >"$out/proxy-compress.toml"
target/release/cachegate serve --config "$out/proxy-compress.toml" 2>"$out/cachegate-compress.log" & proxy=$!
pids+=("$proxy")
for port in 18100 18180; do
  up=no
  for _ in $(seq 100); do
    if curl -fs -o /dev/null "http://127.0.0.1:$port/api/kib/" -H 'X-Org-Id: 42'; then up=yes; break; fi
    sleep 0.1
  done
  [ "$up" = yes ] || { echo "server on port $port did not come up:" >&2; cat "$out"/*compress*.log >&2; exit 1; }
done
for path in /api/kib/ /api/big/ /api/gz/; do
  curl -fs -o /dev/null -H 'X-Org-Id: 42' -H 'Accept-Encoding: gzip' "http://127.0.0.1:18180$path"
done
status=$(curl -fs -o /dev/null -D - -H 'X-Org-Id: 42' -H 'Accept-Encoding: gzip' http://127.0.0.1:18180/api/gz/ | tr -d '\r')
grep -qi '^cache-status: .*hit' <<<"$status" || { echo "no hit on /api/gz/: $status" >&2; exit 1; }
grep -qi '^content-encoding: gzip' <<<"$status" || { echo "/api/gz/ not gzip: $status" >&2; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$proxy/stat"; }
hz=$(getconf CLK_TCK)
cpu_per_hit() { # name path [accept-encoding] -> microseconds of cachegate CPU per hit
  local before after requests
  before=$(ticks)
  wrk -t1 -c"$conns" -d"${secs}s" -H 'X-Org-Id: 42' -H "Accept-Encoding: ${3:-identity}" \
    "http://127.0.0.1:18180$2" >"$out/compress-$1.txt"
  after=$(ticks)
  requests=$(awk '/requests in/ {print $1}' "$out/compress-$1.txt")
  awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.2f", t * 1e6 / hz / n}'
}
for path in /api/kib/ /api/big/; do
  wrk -t1 -c"$conns" -d2s -H 'X-Org-Id: 42' "http://127.0.0.1:18180$path" >/dev/null
done
printf '%-6s %14s %14s %18s\n' round 'hit 1KiB us' 'hit 16KiB us' 'hit 16KiB gzip us'
k=(); b=(); g=()
for r in $(seq "$rounds"); do
  k+=("$(cpu_per_hit kib /api/kib/)")
  b+=("$(cpu_per_hit big /api/big/)")
  g+=("$(cpu_per_hit gz /api/gz/ gzip)")
  printf '%-6s %14s %14s %18s\n' "$r" "${k[-1]}" "${b[-1]}" "${g[-1]}"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
hk=$(median "${k[@]}"); hb=$(median "${b[@]}"); hg=$(median "${g[@]}")
echo "cachegate CPU per hit (median of $rounds): 1KiB ${hk} us, 16KiB ${hb} us, 16KiB stored gzip ${hg} us"
target/release/cachegate-bench-compress --hit-us-1k "$hk" --hit-us-16k "$hb"
