#!/usr/bin/env python3
"""A/B timing of churn variant binaries, e.g. two builds of memprof against
bare System: every variant runs once per round, interleaved, directly
(`--variant-run`, `CHURN_NO_REPORT=1`), under `perf stat -e task-clock`.
Prints, per variant, the median ns/op, the median of the per-round ratios
to the first variant (the timed part's wall time, and the whole process's
CPU time, which a loaded machine disturbs less), and the largest peak RSS.

usage: benches/ab.py ROUNDS WORKLOAD THREADS OPS LABEL=[VAR=value;...]@BINARY ...

  cargo bench -p memprof-benches --no-run --bench churn_system --bench churn_sampled
  cp target/release/deps/churn_sampled-<hash> /tmp/new   # and a base build's as /tmp/base
  benches/ab.py 7 small 1 3000000 System=@target/release/deps/churn_system-<hash> \
      "base rate1=MEMPROFILERATE=1@/tmp/base" "new rate1=MEMPROFILERATE=1@/tmp/new"

The first variant is the baseline (bare System). Needs `perf`."""
import subprocess, sys, os, statistics, re
rounds, wl, th, ops = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
vs = []
for a in sys.argv[5:]:
    label, rest = a.split('=', 1)
    envs, binary = rest.split('@')
    env = dict(os.environ); env['CHURN_NO_REPORT'] = '1'
    for k in ('MEMPROFILERATE', 'MEMPROF_UNWIND', 'CHURN_SCOPE'): env.pop(k, None)
    for e in filter(None, envs.split(';')):
        k, v = e.split('=', 1); env[k] = v
    vs.append((label, env, binary))
res = {l: [] for l, _, _ in vs}
for r in range(rounds):
    for label, env, binary in vs:
        p = subprocess.run(['perf', 'stat', '-x,', '-e', 'task-clock', binary, '--variant-run', wl, th, ops, '0'],
                           env=env, capture_output=True, text=True)
        last = [l for l in p.stdout.splitlines() if re.match(r'^[0-9.]+ [0-9]+$', l)][-1]
        ns, rss = last.split()
        cpu = float([l for l in p.stderr.splitlines() if 'task-clock' in l][0].split(',')[0])
        res[label].append((float(ns), int(rss), cpu))
base = vs[0][0]
print(f"| variant | wall ns/op median | wall ratio (median of rounds) | CPU ratio (median of rounds) | peak RSS MiB (max) |")
print("|---|---|---|---|---|")
for label, _, _ in vs:
    w = statistics.median(x[0] for x in res[label])
    wr = statistics.median(a[0] / b[0] for a, b in zip(res[label], res[base]))
    cr = statistics.median(a[2] / b[2] for a, b in zip(res[label], res[base]))
    rss = max(x[1] for x in res[label]) / 1024
    print(f"| {label} | {w:.1f} | {wr:.3f} | {cr:.3f} | {rss:.1f} |")
