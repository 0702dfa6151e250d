# Shared pieces of the bench drivers (sourced after tests/integration/lib.sh):
# the traps a driver runs under, and the cgroup CPU accounting.

# bench_traps NAME: cleanups on any exit (without lib.sh's PASS/FAIL line),
# and the command that ends a run named on stderr (a tool killed from
# outside: 143).
bench_traps() {
  trap - EXIT
  trap 'for (( i=${#CLEANUPS[@]}-1; i>=0; i-- )); do eval "${CLEANUPS[$i]}" >/dev/null 2>&1 || true; done' EXIT
  set -E
  # shellcheck disable=SC2064  # the name is fixed now, the rest at trap time
  trap "echo \"$1: line \$LINENO: \\\"\$BASH_COMMAND\\\" exited \$? at \$(date +%T)\" >&2" ERR
  trap "echo \"$1: SIGTERM at \$(date +%T)\" >&2; exit 143" TERM
}

CG=/sys/fs/cgroup

join_cg() {  # join_cg CGPATH: move this (sub)shell into CGPATH of every hierarchy that has it
  local h
  for h in cpuset cpuacct cpu memory pids; do
    if [ -d "$CG/$h/$1" ]; then echo "$BASHPID" > "$CG/$h/$1/cgroup.procs"; fi
  done
}
cg_cpu() {  # seconds summed over the cgroups given
  local s=0 c
  for c in "$@"; do s=$(( s + $(cat "$CG/cpuacct/$c/cpuacct.usage") )); done
  awk -v s="$s" 'BEGIN { printf "%.6f", s / 1e9 }'
}
# cpus_idle "0 1": seconds the cpus were idle (/proc/stat idle + iowait).
# With NO_HZ the kernel measures idle time exactly, while the user/system/
# softirq columns are tick samples that miss short timer-driven bursts; so
# busy time is the wall time minus this, whoever the work was charged to.
# Softirq work (the BPF dataplane, packet receive) that runs on an idle cpu
# is in no cgroup, and receive steering makes that the common case on the
# SoC's cpus.
cpus_idle() {
  awk -v want=" $1 " -v hz="$(getconf CLK_TCK)" '
    /^cpu[0-9]/ { c = substr($1, 4); if (index(want, " " c " ")) s += $5 + $6 }
    END { printf "%.3f", s / hz }' /proc/stat
}
# cpus_busy IDLE0 IDLE1 T0 T1 "0 1": busy seconds of those cpus between two samples.
cpus_busy() {
  awk -v i0="$1" -v i1="$2" -v t0="$3" -v t1="$4" -v n="$(wc -w <<<"$5")" \
    'BEGIN { b = n * (t1 - t0) - (i1 - i0); printf "%.3f", b < 0 ? 0 : b }'
}
cpus_softirq() {  # cpus_softirq "1": the softirq column alone, seconds
  awk -v want=" $1 " -v hz="$(getconf CLK_TCK)" '
    /^cpu[0-9]/ { c = substr($1, 4); if (index(want, " " c " ")) s += $8 }
    END { printf "%.3f", s / hz }' /proc/stat
}
now() { date +%s.%N; }
# expand_cpus <<< "0-2,5 7": "0 1 2 5 7 " (cpuset lists, deduplicated)
expand_cpus() { tr ' ,' '\n\n' | awk -F- 'NF { for (c = $1; c <= ($2 == "" ? $1 : $2); c++) print c }' | sort -un | tr '\n' ' '; }
