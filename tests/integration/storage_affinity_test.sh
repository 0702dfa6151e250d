#!/usr/bin/env bash
# The gateway's poll groups follow the CPU affinity mask (issue #14): under
# `taskset -c C` one group, pinned to C; without it one group per allowed
# cpu, each pinned to its own. And SIGINT stops a gateway promptly.
# Loopback only: the gateway listens on 127.0.0.1.
source "$(dirname "$0")/lib.sh"
work=$(mktemp -d /tmp/oc-aff-XXXX); cleanup "rm -rf $work"
name=aff$ID
cleanup "rm -rf /run/offcore/targets/$name"

# Expands a kernel cpu list ("0-2,5") into one cpu per line.
expand_cpus() {
  tr ',' '\n' <<<"$1" | awk -F- '{ if (NF == 2) { for (i = $1; i <= $2; i++) print i } else print $1 }'
}

# Starts the gateway (under `taskset -c $1` when given); sets GW and waits
# for its startup line.
start_gw() {
  local cpus=$1 log=$work/gw.log
  : >"$log"
  if [ -n "$cpus" ]; then
    taskset -c "$cpus" "$OFFCORE" target serve --listen 127.0.0.1:0 --data "$work/data" --name "$name" >"$log" 2>&1 &
  else
    "$OFFCORE" target serve --listen 127.0.0.1:0 --data "$work/data" --name "$name" >"$log" 2>&1 &
  fi
  GW=$!
  cleanup "kill $GW 2>/dev/null"
  for _ in $(seq 200); do
    grep -q 'poll groups on cpus' "$log" && [ -S "/run/offcore/targets/$name/api.sock" ] && return 0
    alive "$GW" || fail "gateway exited: $(tail -3 "$log")"
    sleep 0.05
  done
  fail "gateway did not start: $(tail -3 "$log")"
}

# "TID CPUS" for each poll-group thread of $GW.
group_threads() {
  local t
  for t in /proc/"$GW"/task/*; do
    [[ "$(cat "$t/comm" 2>/dev/null)" == nvme-poll-* ]] || continue
    echo "$(basename "$t") $(awk '/^Cpus_allowed_list/ {print $2}' "$t/status")"
  done
}

stop_gw() {
  local start took
  start=$(date +%s%N)
  kill -INT "$GW"
  wait "$GW" 2>/dev/null || true
  took=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "SIGINT to exit: $took ms"
  STOP_MS=$took
}

mine=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status)
mapfile -t allowed < <(expand_cpus "$mine")
echo "this test may run on cpus $mine (${#allowed[@]})"
last=${allowed[-1]}

step "taskset -c $last: one poll group, pinned to cpu $last"
start_gw "$last"
grep 'poll groups on cpus' "$work/gw.log"
grep -q "with 1 poll groups on cpus $last " "$work/gw.log" || fail "startup line: $(grep 'poll groups' "$work/gw.log")"
mapfile -t threads < <(group_threads)
[ "${#threads[@]}" -eq 1 ] || fail "expected 1 poll-group thread, found ${#threads[@]}: ${threads[*]}"
[ "${threads[0]#* }" = "$last" ] || fail "poll group runs on cpus ${threads[0]#* }, not $last"
stop_gw
assert_cmp "$STOP_MS" "<" 1000 "an idle gateway must stop within a second of SIGINT"

step "no taskset: one poll group per allowed cpu, each on its own"
start_gw ""
grep 'poll groups on cpus' "$work/gw.log"
mapfile -t threads < <(group_threads)
[ "${#threads[@]}" -eq "${#allowed[@]}" ] || fail "expected ${#allowed[@]} poll-group threads, found ${#threads[@]}"
got=$(for t in "${threads[@]}"; do echo "${t#* }"; done | sort -n | tr '\n' ' ')
want=$(printf '%s\n' "${allowed[@]}" | sort -n | tr '\n' ' ')
[ "$got" = "$want" ] || fail "poll groups pinned to '$got', expected one on each of '$want'"

step "SIGINT with a volume exported"
oc volume create v1 --size 64M --target "$name" >/dev/null
stop_gw
assert_cmp "$STOP_MS" "<" 1000 "a gateway must stop within a second of SIGINT"
