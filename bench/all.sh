#!/usr/bin/env bash
# npm run bench: every bench in turn, then one table of issue 13's goals (bench/summary.ts), each
# with upkeep's figure and the peer's from this run; a goal no bench measured says NOT MEASURED.
set -u
UPKEEP_BENCH_RESULTS="$(mktemp)"
export UPKEEP_BENCH_RESULTS
status=0
npm run bench:startup || status=1
npm run bench:scrape || status=1
npm run bench:growth || status=1
npm run bench:webhook -- --rate 1000 || status=1
npm run bench:backup || status=1
npm run bench:backup-jobs || status=1
npm run bench:expire-keys || status=1
npm run bench:journal -- --sizes 1000000 || status=1
node --import tsx bench/summary.ts || status=1
rm -f "$UPKEEP_BENCH_RESULTS"
exit $status
