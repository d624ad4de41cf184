#!/usr/bin/env bash
# The long run: fuzzes every target (or the ones named) until its fuzzer process has
# used CPU_SECONDS of CPU time (user + system, measured by /usr/bin/time), not wall
# time, so a busy machine makes the run slower but not shorter. Runs under `nice -n 19`
# (it takes idle CPU only), at most FUZZ_PARALLEL targets at once (default 2), in
# chunks that resume the corpus, and goes on after a crash (each is kept in
# fuzz/artifacts/<target>/). Prints per target: CPU seconds, executions, coverage
# (cov = edges, ft = features), corpus size and crashes. Exits 1 if anything crashed,
# timed out or ran out of memory.
#
#   fuzz/long.sh [CPU_SECONDS] [TARGET...]   CPU_SECONDS per target (default 600)
#
# Environment: FUZZ_PARALLEL (targets at once, default 2), FUZZ_NO_BUILD=1 (use the
# binaries already built).
# Same build (AddressSanitizer), seeds, limits and directories as fuzz/run.sh; logs go
# to fuzz/logs/long-<target>.log, one block per chunk.
set -euo pipefail
cd "$(dirname "$0")"
budget=600
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then
  budget="$1"
  shift
fi
all=(lmtp_session lmtp_reply dict_session rewrite push_payload metadata config)
targets=("${@:-${all[@]}}")
parallel="${FUZZ_PARALLEL:-2}"
bin="target/x86_64-unknown-linux-gnu/release"

fail() {
  echo "fuzz/long.sh: $*" >&2
  exit 1
}
[[ -x /usr/bin/time ]] || fail "/usr/bin/time (GNU time) is needed to measure CPU time"
if [[ "${FUZZ_NO_BUILD:-0}" != 1 ]]; then
  cargo +nightly fuzz build --sanitizer address || fail "build failed"
fi
python3 seeds.py . || fail "seeds.py failed"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}" # see run.sh
mkdir -p logs

# Runs one target in chunks until it has used $budget CPU seconds. A chunk may last as
# long as the CPU time still owed, at least a minute (under load a chunk gets less CPU
# than wall time: then there are more chunks; the budget is overshot by < 60 s).
run_one() {
  local target="$1" used=0 execs=0 crashes=0 chunk status cs
  local log="logs/long-$target.log" part="logs/long-$target.part" times="logs/long-$target.time"
  mkdir -p "corpus/$target" "artifacts/$target"
  : >"$log"
  while [[ $used -lt $((budget * 100)) ]]; do
    chunk=$((budget - used / 100))
    [[ $chunk -lt 60 ]] && chunk=60
    status=0
    nice -n 19 /usr/bin/time -f 'cpu: %U %S' -o "$times" \
      "$bin/$target" "corpus/$target" -max_total_time="$chunk" -timeout=10 \
      -rss_limit_mb=2048 -max_len=65536 -dict="dict/$target.dict" \
      -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"$part" 2>&1 || status=$?
    cs="$(awk '/^cpu: /{printf "%d", ($2 + $3) * 100}' "$times")" # centiseconds
    used=$((used + ${cs:-0}))
    execs=$((execs + $(grep -oE 'number_of_executed_units: [0-9]+' "$part" | grep -oE '[0-9]+$' || echo 0)))
    # libFuzzer exits 0 when its time is up; anything else is a crash, timeout or OOM.
    [[ $status -ne 0 ]] && crashes=$((crashes + 1))
    cat "$part" >>"$log"
    echo "== chunk: exit $status, $((${cs:-0} / 100)) CPU s, total $((used / 100)) CPU s" >>"$log"
    # A crash at start-up would loop without using CPU: stop.
    [[ ${cs:-0} -lt 100 && $status -ne 0 ]] && break
  done
  local line
  line="$(grep -E '^#[0-9]+[[:space:]].*cov: ' "$log" | tail -n 1 || true)"
  printf '%-14s %6s %12s %8s %8s %8s %8s\n' "$target" "$((used / 100))" "$execs" \
    "$(grep -oE 'cov: [0-9]+' <<<"$line" | grep -oE '[0-9]+' || echo '?')" \
    "$(grep -oE 'ft: [0-9]+' <<<"$line" | grep -oE '[0-9]+' || echo '?')" \
    "$(grep -oE 'corp: [0-9]+' <<<"$line" | grep -oE '[0-9]+' || echo '?')" \
    "$crashes" >"logs/long-$target.result"
  rm -f "$part" "$times"
}

for target in "${targets[@]}"; do
  [[ -x "$bin/$target" ]] || fail "no such target: $target"
  while [[ $(jobs -rp | wc -l) -ge $parallel ]]; do
    wait -n || true
  done
  run_one "$target" &
done
wait

printf '%-14s %6s %12s %8s %8s %8s %8s\n' target cpu_s execs cov ft corpus crashes
failed=0
for target in "${targets[@]}"; do
  cat "logs/long-$target.result"
  [[ "$(awk '{print $7}' "logs/long-$target.result")" == 0 ]] || failed=1
done
[[ $failed -eq 0 ]] || fail "crashes: see fuzz/artifacts/<target>/ and fuzz/logs/long-<target>.log"
echo "fuzz: no crash in ${#targets[@]} target(s), ${budget} CPU seconds each"
