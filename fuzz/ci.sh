#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time, starting from the committed seed corpus.
# Meant to be called from .ci/run (e.g. `fuzz/ci.sh`); usable by hand too.
#
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_TARGETS   space-separated targets (default: every target of `cargo fuzz list`)
#
# Installs cargo-fuzz from crates.io if it is missing. A nightly toolchain is not needed:
# RUSTC_BOOTSTRAP=1 lets the active (stable) toolchain accept the sanitizer flags that
# cargo-fuzz passes. Exits non-zero on the first target that finds a failure; the crashing
# input is then in fuzz/artifacts/<target>/ (add it to fuzz/seeds/<target>/ once fixed).
set -euo pipefail
cd "$(dirname "$0")"

secs="${FUZZ_SECONDS:-60}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
for target in $targets; do
  echo "== fuzz $target for ${secs}s"
  mkdir -p "corpus/$target"
  seeds=()
  if [ -d "seeds/$target" ]; then
    seeds=("seeds/$target")
  fi
  # The first corpus directory collects new inputs (git-ignored); seeds are only read.
  cargo fuzz run "$target" "corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
echo "== fuzz: every target ran ${secs}s without a failure"
