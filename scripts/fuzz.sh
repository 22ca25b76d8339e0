#!/usr/bin/env bash
# Runs every Go fuzz target of the module (every `func FuzzXxx(f *testing.F)`
# in a _test.go file outside sdk/, tools/ and third_party/), one at a time,
# each for a bounded time: FUZZTIME (default 10s; any -fuzztime value, such
# as 30s or 5000x). Fails on the first finding: `go test` prints the input
# that failed and writes it to the package's testdata/fuzz/<FuzzXxx>/, where
# it becomes part of the committed seed corpus once the bug is fixed (every
# plain `go test` then replays it).
#
#   scripts/fuzz.sh                      every target, 10s each
#   FUZZTIME=2m scripts/fuzz.sh          longer
#   scripts/fuzz.sh FuzzGatewayJSON      only the targets named
#
# A run that Go 1.26's coordinator ends with a bare "context deadline
# exceeded" and no saved input (go.dev/issue/75804) runs once more.
#
# FUZZ_PARALLEL sets the number of fuzzing workers (default: GOMAXPROCS).
# FUZZMINIMIZETIME bounds how long an input is minimized (default 10s, not
# go test's 60s, which would spend a short run minimizing new inputs).
# The first run builds each package with coverage instrumentation, which
# takes a few minutes on two cores; later runs reuse the build cache.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-10s}
minimizetime=${FUZZMINIMIZETIME:-10s}
parallel=()
if [[ -n ${FUZZ_PARALLEL:-} ]]; then
  parallel=(-parallel "$FUZZ_PARALLEL")
fi

# "<package dir> <target>" for every fuzz target, sorted.
targets=$(grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' \
    --exclude-dir=sdk --exclude-dir=tools --exclude-dir=third_party --exclude-dir=node_modules --exclude-dir=.cache . |
  sed -E 's#^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#' | sort)
if [[ -z $targets ]]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# fuzz DIR TARGET: one run of one target, its output also in $log.
fuzz() {
  go test -run '^$' -fuzz "^${2}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimizetime" \
    ${parallel[@]+"${parallel[@]}"} "./$1" 2>&1 | tee "$log"
}

# inputs DIR TARGET: the inputs saved for the target, one per line.
inputs() { ls "$1/testdata/fuzz/$2" 2>/dev/null || true; }

ran=0
while read -r dir target; do
  if [[ $# -gt 0 ]] && ! printf '%s\n' "$@" | grep -qx "$target"; then
    continue
  fi
  printf '\n==> %s (./%s) for %s\n' "$target" "$dir" "$fuzztime" >&2
  start=$SECONDS
  before=$(inputs "$dir" "$target")
  if ! fuzz "$dir" "$target"; then
    # Go 1.26's fuzzing coordinator can fail a run with a bare "context
    # deadline exceeded" as -fuzztime ends, with no failing input
    # (go.dev/issue/75804, fixed in Go 1.27). That one failure, and only
    # when no input was saved, runs the target once more; a real finding
    # always saves its input, and fails at once.
    if [[ $(inputs "$dir" "$target") == "$before" ]] && grep -qx '    context deadline exceeded' "$log"; then
      echo "fuzz: $target: Go's fuzzing coordinator stopped on its own deadline with no failing input (go.dev/issue/75804); running it once more" >&2
      if fuzz "$dir" "$target"; then
        echo "fuzz: $target: no finding in $((SECONDS - start))s (build included)" >&2
        ran=$((ran + 1))
        continue
      fi
    fi
    if [[ $(inputs "$dir" "$target") == "$before" ]]; then
      echo "fuzz: $target failed, and saved no input (see above)" >&2
    else
      echo "fuzz: $target found a failing input (see above; it is saved under $dir/testdata/fuzz/$target/)" >&2
    fi
    exit 1
  fi
  echo "fuzz: $target: no finding in $((SECONDS - start))s (build included)" >&2
  ran=$((ran + 1))
done <<<"$targets"

if [[ $ran -eq 0 ]]; then
  echo "fuzz: no fuzz target matches: $*" >&2
  exit 1
fi
echo "fuzz: $ran targets, no finding" >&2
