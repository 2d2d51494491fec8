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
#   INSTR_WORKLOAD=parse benches/instructions.sh   # per pass of the parse workload
#
# INSTR_WORKLOAD=parse (syn::parse_file over syn's own sources, see
# benches/churn.rs) counts per pass: INSTR_OPS defaults to "0 1" there (a
# run with no pass, start-up and the corpus read, and a run with one), and
# INSTR_VARIANTS to every variant but libgcc, scope and mimalloc-pprof-1
# (dhat and pprof-alloc-1 take a few minutes each under valgrind).
#
# Variants whose per-op count is random (sampling: memprof's default rate,
# jemalloc's profiler) run INSTR_REPS times (default 3) and show the median
# and the range; the others are deterministic and run once.
# Each run has CHURN_NO_REPORT=1: the variants skip what they do after the
# result line (memprof reading its profile, pprof-alloc generating one,
# dhat writing its JSON), so the count is the workload's alone.
# Needs valgrind (`apt-get install -y valgrind`). Takes ~3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKLOAD=${INSTR_WORKLOAD:-small}
if [ "$WORKLOAD" = parse ]; then
  read -r OPS_LO OPS_HI <<<"${INSTR_OPS:-0 1}"
  UNIT=pass
  DEFAULT_VARIANTS="system forward sampled-0 sampled-default sampled-1 sampled-1-dwarf jemalloc jemalloc-prof dhat pprof-alloc pprof-alloc-1 mimalloc mimalloc-pprof"
else
  read -r OPS_LO OPS_HI <<<"${INSTR_OPS:-200000 600000}"
  UNIT=op
  DEFAULT_VARIANTS="system forward sampled-0 sampled-default sampled-1 jemalloc jemalloc-prof dhat"
fi
DEPTH=${INSTR_DEPTH:-0}
REPS=${INSTR_REPS:-3}
VARIANTS=${INSTR_VARIANTS:-$DEFAULT_VARIANTS}
JEMALLOC_PROF=prof:true,prof_active:true,lg_prof_sample:19

command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install -y valgrind" >&2; exit 1; }

json=$(cargo bench -p memprof-benches --no-run --message-format=json-render-diagnostics \
  --bench churn_system --bench churn_forward --bench churn_sampled \
  --bench churn_jemalloc --bench churn_dhat --bench churn_pprof_alloc --bench churn_mimalloc)
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
    sampled-1-dwarf) echo "churn_sampled|MEMPROFILERATE=1 MEMPROF_UNWIND=dwarf|memprof.unwinder=Dwarf|1" ;;
    jemalloc) echo "churn_jemalloc||opt.prof=false|1" ;;
    jemalloc-prof) echo "churn_jemalloc|_RJEM_MALLOC_CONF=$JEMALLOC_PROF|opt.prof=true prof.active=true opt.lg_prof_sample=19|$REPS" ;;
    dhat) echo "churn_dhat|||1" ;;
    pprof-alloc) echo "churn_pprof_alloc||pprof_alloc.capture=FramePointer|$REPS" ;;
    pprof-alloc-1) echo "churn_pprof_alloc|PPROF_ALLOC_SAMPLE_RATE=1|pprof_alloc.capture=FramePointer|1" ;;
    mimalloc) echo "churn_mimalloc||mimalloc.prof=false|1" ;;
    mimalloc-pprof) echo "churn_mimalloc|MIMALLOC_PROF=1 MIMALLOC_PROF_ACCUM=1|mimalloc.prof=true mimalloc.rate=524288|$REPS" ;;
    *) echo "unknown variant $1" >&2; exit 1 ;;
  esac
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# irefs EXE OPS EXPECT VAR=value...: total instructions of one run.
irefs() {
  local exe=$1 ops=$2 expect=$3
  shift 3
  if ! env -u MEMPROFILERATE -u MEMPROFILE -u MEMPROF_UNWIND -u _RJEM_MALLOC_CONF -u MALLOC_CONF \
    -u PPROF_ALLOC_SAMPLE_RATE -u MIMALLOC_PROF -u MIMALLOC_PROF_ACCUM CHURN_NO_REPORT=1 "$@" \
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
    echo "  $v: $lo instr at $OPS_LO ${UNIT}(s), $hi at $OPS_HI ${UNIT}(s) -> ${vals[-1]} per $UNIT" >&2
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
    sampled-1-dwarf) echo "Sampled, rate 1, MEMPROF_UNWIND=dwarf" ;;
    jemalloc) echo "jemalloc (tikv-jemallocator)" ;;
    jemalloc-prof) echo "jemalloc prof, lg_prof_sample:19" ;;
    dhat) echo "dhat (every alloc)" ;;
    pprof-alloc) echo "pprof-alloc, default 512 KiB" ;;
    pprof-alloc-1) echo "pprof-alloc, rate 1 (every alloc)" ;;
    mimalloc) echo "mimalloc (profiler off)" ;;
    mimalloc-pprof) echo "mimalloc-pprof, MIMALLOC_PROF=1" ;;
  esac
}
diff_to() { # diff_to VARIANT BASE
  if [ -n "${per_op[$2]:-}" ]; then
    awk -v a="${per_op[$1]}" -v b="${per_op[$2]}" 'BEGIN { printf "%+.1f", a - b }'
  else echo "—"; fi
}

ratio_to() { # ratio_to VARIANT BASE
  if [ -n "${per_op[$2]:-}" ]; then
    awk -v a="${per_op[$1]}" -v b="${per_op[$2]}" 'BEGIN { printf "%.3f", a / b }'
  else echo "—"; fi
}

echo
if [ "$WORKLOAD" = parse ]; then
  echo "### Instructions per pass of syn::parse_file over syn's sources (1 thread, depth $DEPTH; cachegrind, ($OPS_HI − $OPS_LO) passes)"
  echo
  echo "| variant | instr/pass | range over runs | ratio to System | ratio to forwarding wrapper | ratio to its plain allocator |"
  echo "|---|---|---|---|---|---|"
  for v in $VARIANTS; do
    plain="—"
    case $v in jemalloc-prof) plain=$(ratio_to "$v" jemalloc) ;; mimalloc-pprof) plain=$(ratio_to "$v" mimalloc) ;; esac
    fw="—"
    case $v in sampled-*) fw=$(ratio_to "$v" forward) ;; esac
    echo "| $(label "$v") | ${per_op[$v]} | ${range[$v]:-—} | $(ratio_to "$v" system) | $fw | $plain |"
  done
  exit 0
fi
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
