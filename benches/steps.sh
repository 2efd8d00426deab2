# Sourced by the bench scripts (run.sh, voice.sh). `step LOG CMD...` runs CMD in its own
# process group (setsid), output to LOG or the terminal when LOG is -, and waits, so that an
# interrupt stops it and everything it started (cmake/cargo jobs, servers).
CHILD=""
cleanup() {
    if [[ -n "$CHILD" ]]; then
        kill -TERM -- "-$CHILD" 2>/dev/null || kill -TERM "$CHILD" 2>/dev/null
        wait "$CHILD" 2>/dev/null
    fi
    true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
step() {
    local out="$1"; shift
    if [[ "$out" == - ]]; then setsid "$@" & else setsid "$@" >"$out" 2>&1 & fi
    CHILD=$!
    local rc=0
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}
