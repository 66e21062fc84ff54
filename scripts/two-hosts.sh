#!/usr/bin/env bash
# Two real hosts: the README's ceremony, as it stands, for nodes in two network namespaces.
#
# Run as root (it creates network namespaces): scripts/two-hosts.sh [path/to/crossmatch]
#
# Two namespaces, xm2-de and xm2-fr, joined by a veth pair (10.232.0.1/24 and 10.232.0.2/24),
# each with its own loopback: the two nodes have separate addresses, and no connection between
# them is a loopback one. The README's ceremony block runs as it stands, with DE_HOST and
# FR_HOST set to those addresses (namespaces share the filesystem, so the files "travel" by
# being where the block puts them); then DE's and FR's nodes run, each in its namespace, from
# exactly the files it made (NL stays down). Each node's API listens on loopback inside its own
# namespace, so every call to it runs there. It shows:
#   1. a match both ways: the README's record added at DE and at FR, each alerted naming the
#      other.
# Every wait has a timeout (GIVE_UP_SECS, default 120); the namespaces are removed on exit,
# whatever happens. Exit 0 when everything was shown, 1 when something was not, 2 when it
# could not run.

set -euo pipefail

BIN=${1:-target/debug/crossmatch}
GIVE_UP_SECS=${GIVE_UP_SECS:-120}
PREFIX=xm2
DE_HOST=10.232.0.1
FR_HOST=10.232.0.2
DE_API=7481
FR_API=7482

say() { printf 'two-hosts: %s\n' "$*"; }
fail() { printf 'two-hosts: FAILED: %s\n' "$*" >&2; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
    echo "two-hosts.sh: needs root to create network namespaces" >&2
    exit 2
fi
for tool in ip python3 curl; do
    command -v "$tool" >/dev/null || { echo "two-hosts.sh: $tool not found" >&2; exit 2; }
done
[[ -x $BIN ]] || { echo "two-hosts.sh: no crossmatch binary at $BIN (cargo build first)" >&2; exit 2; }
BIN=$(realpath "$BIN")
README=$(realpath "$(dirname "$0")/../README.md")

WORK=$(mktemp -d)
NAMESPACES=(de fr)
# Stops every process in the namespaces made here (the nodes, and anything else run there).
stop_all() {
    for ns in "${NAMESPACES[@]}"; do
        for pid in $(ip netns pids "$PREFIX-$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    done
    wait 2>/dev/null || true
}
remove_namespaces() {
    stop_all
    for ns in "${NAMESPACES[@]}"; do ip netns del "$PREFIX-$ns" 2>/dev/null || true; done
}
show_logs() {
    for member in de fr; do
        [[ -f $WORK/$member.log ]] || continue
        echo "--- the last lines of $member's log" >&2
        tail -n 40 "$WORK/$member.log" >&2
    done
}
cleanup() {
    local code=$?
    [[ $code -ne 0 ]] && show_logs
    remove_namespaces
    rm -rf "$WORK"
    exit "$code"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

in_ns() { local ns=$1; shift; ip netns exec "$PREFIX-$ns" "$@"; }

# Leftovers of an aborted run go first (their processes before the namespaces).
remove_namespaces
ip netns add "$PREFIX-de"
ip netns add "$PREFIX-fr"
ip link add "$PREFIX-de0" type veth peer name "$PREFIX-fr0"
ip link set "$PREFIX-de0" netns "$PREFIX-de"
ip link set "$PREFIX-fr0" netns "$PREFIX-fr"
in_ns de ip addr add "$DE_HOST/24" dev "$PREFIX-de0"
in_ns fr ip addr add "$FR_HOST/24" dev "$PREFIX-fr0"
for ns in de fr; do
    in_ns "$ns" ip link set "$PREFIX-${ns}0" up
    in_ns "$ns" ip link set lo up
done

# The README's ceremony block (the `sh` block holding `crossmatch federation new`), extracted as
# its test does, run with bash in an empty directory with the binary on PATH.
cd "$WORK"
python3 - "$README" >ceremony.sh <<'EOF'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
for rest in text.split("```sh\n")[1:]:
    block = rest.split("\n```", 1)[0]
    if "crossmatch federation new" in block:
        print(block)
        break
else:
    sys.exit("the README has no block with crossmatch federation new")
EOF
say "the README's ceremony, with DE_HOST=$DE_HOST and FR_HOST=$FR_HOST"
PATH="$(dirname "$BIN"):$PATH" DE_HOST=$DE_HOST FR_HOST=$FR_HOST DE_API=$DE_API FR_API=$FR_API \
    timeout "$GIVE_UP_SECS" bash ceremony.sh >ceremony.out 2>ceremony.err \
    || { cat ceremony.out ceremony.err >&2; fail "the ceremony block failed"; }
# The admins' bearer tokens, as `init` printed them.
token_of() { sed -n "s/^admin bearer token (admin-$1): *//p" ceremony.out | head -n 1; }
DE_TOKEN=$(token_of de)
FR_TOKEN=$(token_of fr)
[[ -n $DE_TOKEN && -n $FR_TOKEN ]] || fail "init printed no admin token"
# Neither node listens on loopback for the mesh: the roster records the veth addresses.
grep -q "/ip4/$DE_HOST/tcp/" de/node.toml || fail "DE's config does not listen on $DE_HOST"
grep -q "/ip4/$FR_HOST/tcp/" fr/node.toml || fail "FR's config does not listen on $FR_HOST"

# api MEMBER METHOD PATH [BODY]: a call to MEMBER's API, inside its namespace; the body on
# stdout; fails on an HTTP error.
api() {
    local member=$1 method=$2 path=$3 body=${4:-} token port
    if [[ $member == de ]]; then token=$DE_TOKEN port=$DE_API; else token=$FR_TOKEN port=$FR_API; fi
    local args=(-sS -f --max-time 10 -X "$method" -H "Authorization: Bearer $token")
    [[ -n $body ]] && args+=(-H 'Content-Type: application/json' -d "$body")
    in_ns "$member" curl "${args[@]}" "http://127.0.0.1:$port$path"
}
# wait_for WHAT COMMAND...: runs COMMAND until it succeeds, for at most GIVE_UP_SECS.
wait_for() {
    local what=$1; shift
    local deadline=$((SECONDS + GIVE_UP_SECS))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "timed out waiting for $what"
        sleep 0.5
    done
}
json() { python3 -c "import json,sys; v=json.load(sys.stdin); $1"; }

# The nodes, each in its namespace, from the files the ceremony made (as its README block runs
# them: from the directory holding the members' directories).
start_node() {
    # `ip netns exec` runs the command in its own process: $! is the node.
    in_ns "$1" "$BIN" run --config "$1/node.toml" >"$WORK/$1.log" 2>&1 &
}
ready_with_peer() {
    api "$1" GET /v1/status | json 'sys.exit(0 if v["ready"] is True and v["peers"] >= 1 else 1)'
}
start_node de
start_node fr
wait_for "DE ready and connected to FR" ready_with_peer de
wait_for "FR ready and connected to DE" ready_with_peer fr
say "DE and FR run in their namespaces, connected over the veth pair"

# 1. A match both ways: the README's record, added at DE and at FR.
RECORD='{"identifiers":[{"kind":"account","platform":"x","value":"@example"}],
  "category":"terrorism/propaganda","handling":"H1","evaluation":"B2",
  "expires_in_days":90,"share":true}'
DE_RECORD=$(api de POST /v1/records "$RECORD" | json 'print(v["id"])')
FR_RECORD=$(api fr POST /v1/records "$RECORD" | json 'print(v["id"])')
# alerted MEMBER RECORD OTHER: MEMBER holds an alert on RECORD naming OTHER.
alerted() {
    api "$1" GET /v1/alerts | json "sys.exit(0 if any($2 in a['records'] and any(c['member'] == '$3' for c in a['counterparts']) for a in v['alerts']) else 1)"
}
wait_for "DE's alert naming FR" alerted de "$DE_RECORD" FR
wait_for "FR's alert naming DE" alerted fr "$FR_RECORD" DE
say "1. a match both ways: DE's record #$DE_RECORD is alerted naming FR, FR's #$FR_RECORD naming DE"

say "everything shown"
