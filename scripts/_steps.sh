# Sourced by the set-up scripts: one progress line per step, the step's own output
# (apt, pip, setuptools, debootstrap, podman) in a log that is printed in full when
# the step fails or runs past its bound.
#
#   step "what it does" BOUND_SECONDS command [args...]
#
# prints "set-up: what it does ... done in 12.3 s" (or the one-word note the command
# wrote to "$STEP_NOTE", e.g. "present", instead of "done"). The command runs with
# stdin closed, under `timeout BOUND_SECONDS`; on failure the line ends with FAILED
# or TIMED OUT, the log follows, and the calling script exits with the step's code.
# Logs: $ZAUDIO_SETUP_LOGS (default build/setup-logs in the checkout).

ZAUDIO_SETUP_LOGS=${ZAUDIO_SETUP_LOGS:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/setup-logs}
export ZAUDIO_SETUP_LOGS

_step_now() { date +%s.%N; }

_step_took() { # seconds since $1, as "12.3 s" or "2 min 05 s"
  awk -v a="$1" -v b="$(_step_now)" 'BEGIN { s = b - a;
    if (s < 60) printf "%.1f s", s; else printf "%d min %02d s", s / 60, s % 60 }'
}

step() {
  local what=$1 bound=$2
  shift 2
  mkdir -p "$ZAUDIO_SETUP_LOGS"
  local name log note t0 rc=0
  name=$(printf '%s' "$what" | tr -c 'A-Za-z0-9._' '-' | cut -c1-60)
  log=$ZAUDIO_SETUP_LOGS/$name.log
  note=$ZAUDIO_SETUP_LOGS/$name.note
  rm -f "$note"
  printf 'set-up: %s ... ' "$what" >&2
  t0=$(_step_now)
  STEP_NOTE=$note timeout --kill-after=10 "$bound" "$@" </dev/null >"$log" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ]; then
    printf '%s in %s\n' "$(cat "$note" 2>/dev/null || echo done)" "$(_step_took "$t0")" >&2
    return 0
  fi
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    printf 'TIMED OUT after %s (bound %s s); its output:\n' "$(_step_took "$t0")" "$bound" >&2
  else
    printf 'FAILED (exit %s) after %s; its output:\n' "$rc" "$(_step_took "$t0")" >&2
  fi
  cat "$log" >&2
  printf 'set-up: %s FAILED; the log above is %s\n' "$what" "$log" >&2
  exit "$rc"
}

# skip "what it does" "why": the same line for a step that is already done.
skip() {
  printf 'set-up: %s ... %s\n' "$1" "$2" >&2
}
