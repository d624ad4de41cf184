#!/usr/bin/env bash
# Runs coid's benchmarks (benches/README.md) on a Debian 12 / Ubuntu machine, as root:
#   sudo benches/run.sh
# 1. installs Postfix, Dovecot (with Pigeonhole) and the tools the benchmark runs with
#    apt if they are missing (tests/install-packages.sh, shared with tests/run.sh);
# 2. builds the benchmarks with the bench (release) profile; this is the only step
#    that uses the network (crates.io);
# 3. runs them inside a fresh network namespace that has nothing but loopback:
#    `classify` (in-process CPU cost per message), then `e2e` (Postfix or
#    smtp-source → Dovecot or smtp-sink, against the same through coid, and coid's
#    memory), then `push` (Web Push and Delta Chat: pushes and notifications per
#    second, delivery-to-push latency, mail throughput with each kind on and with
#    push off), then `multinode` (coid's state in PostgreSQL against SQLite: pushes per
#    second from one queue with 1 and 3 nodes, and mail throughput), several minutes.
# Postfix, Dovecot, coid and PostgreSQL (its own instance, tests/common/postgres.rs) are
# started by the benchmark on high loopback ports in temporary directories; nothing
# system-wide is configured or started.
# Arguments replace the default `--bench classify --bench e2e --bench push --bench
# multinode` given to `cargo bench` (e.g. benches/run.sh --bench push). COID_BENCH_QUICK=1 runs a tenth of the messages.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "benches/run.sh: run as root (the benchmark starts a real Postfix, which needs root)" >&2
  exit 1
fi

tests/install-packages.sh

args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--bench classify --bench e2e --bench push --bench multinode)
cargo bench --locked --no-run "${args[@]}"
# The network namespace: only loopback exists inside it.
exec unshare --net -- bash -c 'ip link set lo up && exec cargo bench --locked --offline "$@"' \
  bash "${args[@]}"
