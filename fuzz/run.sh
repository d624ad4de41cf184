#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a bounded time each and prints, per
# target: executions, coverage (libFuzzer's cov = edges, ft = features), corpus size
# and crashes. Exits 1 if any target crashed, timed out or ran out of memory, naming
# the input that did it.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     SECONDS per target (default $FUZZ_SECONDS or 30)
#
# Environment:
#   FUZZ_SECONDS      seconds per target when not given as the first argument
#   FUZZ_PARALLEL     targets run at once (default: the number of CPUs)
#   FUZZ_KEEP_GOING=1 keep fuzzing after a crash (libFuzzer -fork=1 -ignore_crashes):
#                     every crash of the whole run is counted and kept; still exits 1
#   FUZZ_SANITIZER    address (cargo fuzz's default) or none (default: address); CI
#                     uses none: coid forbids unsafe code, and the build is faster
#   FUZZ_CODEGEN_UNITS codegen units of the build (cargo fuzz's default: 1; CI: 16,
#                     a faster build for slightly slower targets)
#
# Builds all targets once (cargo +nightly fuzz build; release with debug assertions and
# overflow checks), writes the seeds (fuzz/seeds.py: the test messages, the shipped
# config, protocol lines of the unit tests) into fuzz/corpus/<target>/, where libFuzzer
# also keeps what it finds (not committed), and runs the binaries directly. Crashing
# inputs go to fuzz/artifacts/<target>/, never into the corpus; logs to fuzz/logs/.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-30}"
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then
  seconds="$1"
  shift
fi
all=(lmtp_session lmtp_reply dict_session rewrite push_payload metadata config)
targets=("${@:-${all[@]}}")
parallel="${FUZZ_PARALLEL:-$(nproc)}"
sanitizer="${FUZZ_SANITIZER:-address}"
build=(--sanitizer "$sanitizer")
[[ -n "${FUZZ_CODEGEN_UNITS:-}" ]] && build+=(--codegen-units "$FUZZ_CODEGEN_UNITS")

fail() {
  echo "fuzz/run.sh: $*" >&2
  exit 1
}
command -v python3 >/dev/null || fail "python3 is needed for the seeds"
cargo +nightly fuzz --version >/dev/null 2>&1 ||
  fail "cargo-fuzz on the nightly toolchain is missing (cargo install cargo-fuzz --locked)"

echo "fuzz: building ${#targets[@]} target(s) (sanitizer: $sanitizer)"
if [[ ${#targets[@]} -eq ${#all[@]} ]]; then
  cargo +nightly fuzz build "${build[@]}" || fail "build failed"
else
  for target in "${targets[@]}"; do
    cargo +nightly fuzz build "${build[@]}" "$target" || fail "build of $target failed"
  done
fi
bin="target/x86_64-unknown-linux-gnu/release"
python3 seeds.py . || fail "seeds.py failed"

# sqlite's amalgamation has two function-local arrays named aiOff; ASan's ODR check
# takes them for one global defined twice.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}"

mkdir -p logs
start=logs/.start
touch "$start"

run_one() {
  local target="$1" artifacts="artifacts/$1/"
  mkdir -p "corpus/$target" "$artifacts"
  local mode=()
  if [[ "${FUZZ_KEEP_GOING:-0}" == 1 ]]; then
    mode=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  fi
  local status=0
  "$bin/$target" "corpus/$target" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=65536 -dict="dict/$target.dict" \
    -artifact_prefix="$artifacts" -print_final_stats=1 "${mode[@]}" \
    >"logs/$target.log" 2>&1 || status=$?
  echo "$status" >"logs/$target.status"
}

new_artifacts() {
  find "artifacts/$1" -type f -newer "$start" | sort
}

pids=()
for target in "${targets[@]}"; do
  [[ -x "$bin/$target" ]] || fail "no such target: $target"
  run_one "$target" &
  pids+=($!)
  if [[ ${#pids[@]} -ge $parallel ]]; then
    wait "${pids[0]}"
    pids=("${pids[@]:1}")
  fi
done
wait

failed=0
printf '%-14s %12s %8s %8s %8s %8s  %s\n' target execs cov ft corpus crashes result
for target in "${targets[@]}"; do
  log="logs/$target.log"
  status="$(cat "logs/$target.status")"
  new="$(new_artifacts "$target" | wc -l)"
  # The last status line: `#N ... cov: C ft: F corp: K/...` (fork mode: `#N: cov: ...`).
  line="$(grep -E '^#[0-9]+:?[[:space:]].*cov: ' "$log" | tail -n 1 || true)"
  execs="$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$' ||
    sed -E 's/^#([0-9]+).*/\1/' <<<"$line")"
  cov="$(grep -oE 'cov: [0-9]+' <<<"$line" | grep -oE '[0-9]+' || echo '?')"
  ft="$(grep -oE 'ft: [0-9]+' <<<"$line" | grep -oE '[0-9]+' || echo '?')"
  corp="$(grep -oE 'corp(us)?: [0-9]+' <<<"$line" | grep -oE '[0-9]+' || echo '?')"
  if [[ "$status" == 0 && "$new" == 0 ]]; then
    result=ok
  else
    result="FAILED (exit $status): see fuzz/$log"
    failed=1
  fi
  printf '%-14s %12s %8s %8s %8s %8s  %s\n' "$target" "${execs:-?}" "$cov" "$ft" "$corp" "$new" "$result"
done
if [[ $failed -ne 0 ]]; then
  for target in "${targets[@]}"; do
    [[ "$(cat "logs/$target.status")" == 0 && -z "$(new_artifacts "$target")" ]] && continue
    echo >&2
    echo "== $target: what failed, and the inputs (replay: fuzz/$bin/$target FILE)" >&2
    grep -m 1 -A 1 "panicked at" "logs/$target.log" >&2 || true
    grep -m 1 "^SUMMARY: " "logs/$target.log" >&2 || true
    new_artifacts "$target" | head -n 10 | sed 's|^|  fuzz/|' >&2 || true
  done
  fail "a target failed"
fi
echo "fuzz: no crash in ${#targets[@]} target(s), ${seconds}s each"
