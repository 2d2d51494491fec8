#!/usr/bin/env bash
# Instructions per churn op, exact and repeatable (unlike time on a shared
# machine): each churn variant runs under cachegrind at two op counts and
# the difference of the two totals, divided by the difference in ops, is
# the cost of one op (start-up, the fill of the 16 Ki live slots and exit
# cancel out). Small sizes, 1 thread, depth 0 unless told otherwise.
#
#   benches/instructions.sh
#   INSTR_OPS="200000 600000" INSTR_REPS=3 INSTR_WORKLOAD=small INSTR_DEPTH=0 benches/instructions.sh
#   INSTR_VARIANTS="system forward sampled-0" benches/instructions.sh
#
# Variants whose per-op count is random (sampling: memprof's default rate,
# jemalloc's profiler) run INSTR_REPS times (default 3) and show the median
# and the range; the others are deterministic and run once.
# Needs valgrind (`apt-get install -y valgrind`). Takes ~3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

read -r OPS_LO OPS_HI <<<"${INSTR_OPS:-200000 600000}"
WORKLOAD=${INSTR_WORKLOAD:-small}
DEPTH=${INSTR_DEPTH:-0}
REPS=${INSTR_REPS:-3}
VARIANTS=${INSTR_VARIANTS:-system forward sampled-0 sampled-default sampled-1 jemalloc jemalloc-prof dhat}
JEMALLOC_PROF=prof:true,prof_active:true,lg_prof_sample:19

command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install -y valgrind" >&2; exit 1; }

json=$(cargo bench -p memprof-benches --no-run --message-format=json-render-diagnostics \
  --bench churn_system --bench churn_forward --bench churn_sampled \
  --bench churn_jemalloc --bench churn_dhat)
exe_of() {
  sed -n "s/.*\"name\":\"$1\".*\"executable\":\"\([^\"]*\)\".*/\1/p" <<<"$json" | head -n1
}

# variant key -> "bench|VAR=value ...|expected info substrings|reps"
spec() {
  case $1 in
    system) echo "churn_system|||1" ;;
    forward) echo "churn_forward|||1" ;;
    sampled-0) echo "churn_sampled|MEMPROFILERATE=0||1" ;;
    sampled-default) echo "churn_sampled|||$REPS" ;;
    sampled-1) echo "churn_sampled|MEMPROFILERATE=1||1" ;;
    jemalloc) echo "churn_jemalloc||opt.prof=false|1" ;;
    jemalloc-prof) echo "churn_jemalloc|_RJEM_MALLOC_CONF=$JEMALLOC_PROF|opt.prof=true prof.active=true opt.lg_prof_sample=19|$REPS" ;;
    dhat) echo "churn_dhat|||1" ;;
    *) echo "unknown variant $1" >&2; exit 1 ;;
  esac
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# irefs EXE OPS EXPECT VAR=value...: total instructions of one run.
irefs() {
  local exe=$1 ops=$2 expect=$3
  shift 3
  if ! env -u MEMPROFILERATE -u MEMPROFILE -u MEMPROF_UNWIND -u _RJEM_MALLOC_CONF -u MALLOC_CONF "$@" \
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "$exe" --variant-run "$WORKLOAD" 1 "$ops" "$DEPTH" >"$tmp/out" 2>"$tmp/err"; then
    echo "valgrind failed on $exe ($*):" >&2
    cat "$tmp/err" >&2
    exit 1
  fi
  for e in $expect; do
    grep -q "^info:.* $e\b" "$tmp/out" || {
      echo "$exe ($*): expected '$e' in: $(grep '^info:' "$tmp/out")" >&2
      exit 1
    }
  done
  grep -i 'memprof:' "$tmp/err" >&2 || true
  sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$tmp/err" | tr -d ,
}

declare -A per_op range
for v in $VARIANTS; do
  IFS='|' read -r bench envs expect reps <<<"$(spec "$v")"
  exe=$(exe_of "$bench")
  [ -n "$exe" ] || { echo "no executable for $bench" >&2; exit 1; }
  vals=()
  for ((r = 0; r < reps; r++)); do
    # shellcheck disable=SC2086 # $envs is a list of VAR=value words
    lo=$(irefs "$exe" "$OPS_LO" "$expect" $envs)
    # shellcheck disable=SC2086
    hi=$(irefs "$exe" "$OPS_HI" "$expect" $envs)
    vals+=("$(awk -v a="$lo" -v b="$hi" -v n="$OPS_LO" -v m="$OPS_HI" 'BEGIN { printf "%.1f", (b - a) / (m - n) }')")
    echo "  $v: $lo instr at $OPS_LO ops, $hi at $OPS_HI ops -> ${vals[-1]} per op" >&2
  done
  sorted=$(printf '%s\n' "${vals[@]}" | sort -g)
  per_op[$v]=$(sed -n "$(((reps + 1) / 2))p" <<<"$sorted")
  if [ "$reps" -gt 1 ]; then range[$v]="$(head -n1 <<<"$sorted")–$(tail -n1 <<<"$sorted")"; else range[$v]=""; fi
done

label() {
  case $1 in
    system) echo "System (bare)" ;;
    forward) echo "forwarding wrapper" ;;
    sampled-0) echo "Sampled, rate 0 (off)" ;;
    sampled-default) echo "Sampled, default 512 KiB" ;;
    sampled-1) echo "Sampled, rate 1 (every alloc)" ;;
    jemalloc) echo "jemalloc (tikv-jemallocator)" ;;
    jemalloc-prof) echo "jemalloc prof, lg_prof_sample:19" ;;
    dhat) echo "dhat (every alloc)" ;;
  esac
}
diff_to() { # diff_to VARIANT BASE
  if [ -n "${per_op[$2]:-}" ]; then
    awk -v a="${per_op[$1]}" -v b="${per_op[$2]}" 'BEGIN { printf "%+.1f", a - b }'
  else echo "—"; fi
}

echo
echo "### Instructions per churn op ($WORKLOAD sizes, 1 thread, depth $DEPTH; cachegrind, ($OPS_HI − $OPS_LO) ops)"
echo
echo "| variant | instr/op | range over runs | vs System | vs forwarding wrapper | vs jemalloc |"
echo "|---|---|---|---|---|---|"
for v in $VARIANTS; do
  je="—"
  case $v in jemalloc | jemalloc-prof) je=$(diff_to "$v" jemalloc) ;; esac
  fw="—"
  case $v in forward | sampled-*) fw=$(diff_to "$v" forward) ;; esac
  echo "| $(label "$v") | ${per_op[$v]} | ${range[$v]:-—} | $(diff_to "$v" system) | $fw | $je |"
done
