#!/usr/bin/env bash
# The measurement behind docs/cpu-sampler.md's "Five default runs": K default `cargo xtask profile cpu --kernel`
# runs, then, per run, each thread group's share by the sampler, by its own clock and by perf, the top self
# functions sampler against perf (kernel frames charged to the first user-space frame), and the machine's steal
# time during the run (from /proc/stat). Needs perf (see `--kernel`) and python3 to read the summaries.
#
#   benchmarks/sampler-truth.sh [K=5] [NAME=sampler-truth]     # runs results/NAME-1 … NAME-K
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
name="${2:-sampler-truth}"
steal() { awk '/^cpu /{busy=$2+$3+$4+$7+$8+$9; print $9, busy}' /proc/stat; }
for i in $(seq "$runs"); do
  before=$(steal)
  cargo xtask profile cpu --kernel --save "$name-$i" >"results/.$name-$i.out" 2>&1 \
    || { echo "run $i failed: see results/.$name-$i.out"; exit 1; }
  after=$(steal)
  read -r s0 b0 <<<"$before"; read -r s1 b1 <<<"$after"
  echo "$((s1 - s0)) $((b1 - b0))" >"results/$name-$i/steal.txt"
done
python3 - "$name" "$runs" <<'PY'
import json, sys
name, runs = sys.argv[1], int(sys.argv[2])
for i in range(1, runs + 1):
    d = f"results/{name}-{i}"
    s = json.load(open(f"{d}/summary.json"))["cpu"]
    threads = {r["name"]: r for r in s["threads"]["rows"]}
    perf = {r["name"]: r for r in s["perf"]["threads"]}
    steal, busy = map(int, open(f"{d}/steal.txt").read().split())
    print(f"{name}-{i}: capture {s['headline']['capture_ratio']:.3f}, steal {100 * steal / max(busy, 1):.2f} % of busy ticks")
    for t in ("drift-exporter", "tokio-rt-worker", "drift-sampler"):
        if t in threads:
            r, p = threads[t], perf.get(t, {"perf_share": 0})
            print(f"  {t:16} samples {100 * r['sample_share']:6.2f}  own clock {100 * r['cpu_share']:6.2f}  perf {100 * p['perf_share']:6.2f}")
    for f in sorted(s["perf"]["functions"], key=lambda f: -f["sampler_share"])[:8]:
        gap = 100 * (f["sampler_share"] - f["perf_share"])
        print(f"  {f['name'][:44]:44} sampler {100 * f['sampler_share']:5.2f}  perf {100 * f['perf_share']:5.2f}  {gap:+.1f}")
PY
