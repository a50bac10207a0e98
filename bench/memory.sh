#!/usr/bin/env bash
# The memory benchmark (bench/memory.rs): RSS per stored entry against its counted weight, the
# max_memory bound, hits at 1k and 1M entries; calibrate measures the weight model's constants.
# Usage: bash bench/memory.sh [weight] [bound] [flat] [calibrate] [flags]   (release build)
#        bash bench/memory.sh --short    (release build, the check .ci/run runs: under a minute once
#                                         built; weight bound --check --entries 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--short" ]; then
  shift
  # Release, as shipped: the memory an operator sees (a debug build allocates differently).
  # Fails when a weight is more than 10 % off the RSS it costs, or the bound does not hold.
  cargo build --release --quiet --bin cachegate --bin cachegate-bench-memory
  exec target/release/cachegate-bench-memory weight bound --check --entries 20000 "$@"
fi
if [[ " $* " == *" flat "* ]] && ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --quiet --bin cachegate --bin cachegate-bench-memory
exec target/release/cachegate-bench-memory "$@"
