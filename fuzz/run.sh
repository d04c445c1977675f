#!/usr/bin/env bash
# Runs every cargo-fuzz target of this crate for FUZZ_SECONDS seconds (default 60) on the stable
# toolchain, each on a copy of its seed corpus in a temporary directory, so nothing is written to
# the repository except the build cache in fuzz/target (ignored by git).
#
# Time budget: FUZZ_SECONDS is per target. FUZZ_TOTAL_SECONDS, if set, is shared evenly by the
# targets instead (at least 10 s each), so that adding a target does not lengthen a CI job. A
# target given as TARGET=SECONDS gets that many seconds whatever the variables say.
#
# Exits non-zero if any target crashes, panics, fails an assertion, leaks past -rss_limit_mb or
# times out on one input. A crashing input is kept under FUZZ_ARTIFACTS (default: a temporary
# directory that is then left in place) and printed in base64, so a CI log is enough to
# reproduce it: `echo ... | base64 -d > crash && RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET crash`.
#
# Campaign mode (`--campaign` first): every target for FUZZ_SECONDS (default 1800) with
# FUZZ_JOBS libFuzzer jobs (default: one per core), on a corpus kept between runs in FUZZ_CORPUS (default
# fuzz/campaign/, ignored by git; seeded from fuzz/corpus/ the first time), so that campaigns add
# up. The summary gives each target's executions.
#
# FUZZ_SANITIZER (default `address`, cargo-fuzz's own default) is passed to `cargo fuzz
# --sanitizer`. The crate forbids unsafe code, so `none` only gives up checking the
# dependencies' unsafe code, for several times the executions per second: what a long campaign
# on few cores may prefer.
#
# Usage: [FUZZ_SECONDS=N | FUZZ_TOTAL_SECONDS=N] [FUZZ_JOBS=N] [FUZZ_SANITIZER=S] [FUZZ_ARTIFACTS=DIR] bash fuzz/run.sh [--campaign] [TARGET[=SECONDS]...]
set -euo pipefail

cd "$(dirname "$0")"
campaign=0
if [ "${1:-}" = "--campaign" ]; then
    campaign=1
    shift
fi
if [ "$campaign" = 1 ]; then
    seconds=${FUZZ_SECONDS:-1800}
    jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
else
    seconds=${FUZZ_SECONDS:-60}
    jobs=1
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
# cargo-fuzz passes -Z flags to rustc; stable rustc accepts them only with this set.
export RUSTC_BOOTSTRAP=1
sanitizer=(--sanitizer "${FUZZ_SANITIZER:-address}")

work=$(mktemp -d "${TMPDIR:-/tmp}/pgproto-fuzz.XXXXXX")
artifacts=${FUZZ_ARTIFACTS:-$work/artifacts}
keep_work=0
cleanup() { if [ "$keep_work" = 0 ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
    # One build of every target up front: cargo builds them in parallel.
    echo "== building ${#targets[@]} targets"
    cargo fuzz build "${sanitizer[@]}"
fi
if [ -n "${FUZZ_TOTAL_SECONDS:-}" ]; then
    seconds=$((FUZZ_TOTAL_SECONDS / ${#targets[@]}))
    if [ "$seconds" -lt 10 ]; then seconds=10; fi
fi

summary=()
failed=0
for spec in "${targets[@]}"; do
    t=${spec%%=*}
    budget=$seconds
    if [ "$spec" != "$t" ]; then budget=${spec#*=}; fi
    echo "== $t: building and fuzzing for ${budget} s"
    if [ "$campaign" = 1 ]; then
        corpus="${FUZZ_CORPUS:-$PWD/campaign}/$t"
    else
        corpus="$work/corpus/$t"
    fi
    mkdir -p "$corpus" "$artifacts/$t"
    if [ -d "corpus/$t" ] && [ -z "$(ls -A "$corpus")" ]; then
        cp -R "corpus/$t/." "$corpus/"
    fi
    log="$work/$t.log"
    extra=()
    if [ "$jobs" -gt 1 ]; then
        # -jobs writes each worker's log to fuzz-N.log here; they are appended to $log below.
        extra=(-jobs="$jobs" -workers="$jobs")
    fi
    set +e
    cargo fuzz run "${sanitizer[@]}" "$t" "$corpus" -- \
        -max_total_time="$budget" \
        -rss_limit_mb=2048 \
        -timeout=10 \
        -artifact_prefix="$artifacts/$t/" \
        "${extra[@]}" \
        2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    if [ "$jobs" -gt 1 ]; then
        cat fuzz-*.log >> "$log" 2>/dev/null || true
        rm -f fuzz-*.log
    fi
    # One "Done N runs" line per libFuzzer process: the target's executions are their sum.
    # (A crashed run has no such line: grep fails, which must not end the script before the
    # crashing input is printed.)
    runs=$( (grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" || true) | awk '{n += $2} END {print n + 0}')
    secs=$( (grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" || true) | awk '{if ($5 > s) s = $5} END {print s + 0}')
    if [ "$rc" -eq 0 ] && [ "$runs" -gt 0 ]; then
        summary+=("$t: $runs runs in $secs s (budget ${budget} s, $jobs job(s))")
    else
        failed=1
        keep_work=1
        summary+=("$t: FAILED (exit code $rc)")
        for f in "$artifacts/$t"/*; do
            [ -f "$f" ] || continue
            echo "== $t: crashing input $f (base64):"
            base64 -w0 "$f"
            echo
        done
    fi
done

echo
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
    echo "== fuzzing FAILED; logs and inputs kept in $work (artifacts in $artifacts)"
    exit 1
fi
