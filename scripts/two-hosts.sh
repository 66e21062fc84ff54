#!/usr/bin/env bash
# Two real hosts: the README's ceremony, as it stands, for nodes in two network namespaces.
#
# Run as root (it creates network namespaces): scripts/two-hosts.sh [path/to/crossmatch]
#
# Two namespaces, xm2-de and xm2-fr, joined by a veth pair (10.232.0.1/24 and 10.232.0.2/24),
# each with its own loopback: the two nodes have separate addresses, and no connection between
# them is a loopback one. The README's ceremony block runs as it stands, with DE_HOST and
# FR_HOST set to those addresses (namespaces share the filesystem, so the files "travel" by
# being where the block puts them); DE's config then gains a `[webhook]` section (a key from
# `crossmatch webhook-secret new`, the URL of scripts/webhook_receiver.py on DE's loopback), and
# DE's and FR's nodes run, each in its namespace, from exactly the files it made (NL stays
# down). Each node's API listens on loopback inside its own namespace, so the analyst's command
# line runs there, with CROSSMATCH_API and CROSSMATCH_TOKEN set. It shows:
#   1. a match both ways: the README's account added at DE and at FR with `crossmatch records
#      add` (the identifier on stdin), each alerted naming the other (`crossmatch alerts --json`);
#   2. the stream resuming after its client is killed: FR's `crossmatch alerts --follow
#      --cursor-file F` prints the match's alert.opened and is killed with SIGKILL; FR and DE add
#      a second account; restarted, the follower prints exactly the missed event first (the
#      next seq of the same incarnation);
#   3. a webhook delivery: the receiver verified the signature of at least one alert.opened.
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
for tool in ip python3 timeout; do
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
    for log in de.log fr.log follow-1.err follow-2.err webhook.err; do
        [[ -f $WORK/$log ]] || continue
        echo "--- the last lines of $log" >&2
        tail -n 40 "$WORK/$log" >&2
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


# DE's webhook: a signing key made as the README says, and a [webhook] section pointing at
# the receiver on DE's own loopback (http:// is accepted to loopback only), written before DE
# starts. The receiver checks each delivery's signature with the same key.
HOOK_PORT=8470
"$BIN" webhook-secret new --out de/webhook.secret >/dev/null
cat >>de/node.toml <<TOML

[webhook]
url = "http://127.0.0.1:$HOOK_PORT/crossmatch"
secret_file = "webhook.secret"
max_backoff_secs = 5
TOML

# cli MEMBER ARGS...: the analyst's command line, run inside MEMBER's namespace, with the API's
# address and the admin's token in CROSSMATCH_API and CROSSMATCH_TOKEN (never an argument).
api_of() { if [[ $1 == de ]]; then echo "http://127.0.0.1:$DE_API"; else echo "http://127.0.0.1:$FR_API"; fi; }
token_for() { if [[ $1 == de ]]; then echo "$DE_TOKEN"; else echo "$FR_TOKEN"; fi; }
cli() {
    local member=$1; shift
    CROSSMATCH_API=$(api_of "$member") CROSSMATCH_TOKEN=$(token_for "$member") \
        ip netns exec "$PREFIX-$member" timeout 30 "$BIN" "$@"
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

# The receiver, on DE's loopback: one JSON line per verified delivery in webhook.out.
ip netns exec "$PREFIX-de" python3 "$(dirname "$README")/scripts/webhook_receiver.py" \
    --secret-file de/webhook.secret --host 127.0.0.1 --port "$HOOK_PORT" \
    --out "$WORK/webhook.out" 2>"$WORK/webhook.err" &
receiver_listening() { grep -q "listening on" "$WORK/webhook.err"; }
wait_for "the webhook receiver to listen" receiver_listening

# The nodes, each in its namespace, from the files the ceremony made (as its README block runs
# them: from the directory holding the members' directories).
start_node() {
    # `ip netns exec` runs the command in its own process: $! is the node.
    in_ns "$1" "$BIN" run --config "$1/node.toml" >"$WORK/$1.log" 2>&1 &
}
ready_with_peer() {
    cli "$1" status --json | json 'sys.exit(0 if v["ready"] is True and v["peers"] >= 1 else 1)'
}
start_node de
start_node fr
wait_for "DE ready and connected to FR" ready_with_peer de
wait_for "FR ready and connected to DE" ready_with_peer fr
say "DE and FR run in their namespaces, connected over the veth pair"

# FR's analyst follows the live alert stream, keeping its cursor in a file. Started before any
# alert: it writes the stream's head to the cursor file once the stream has said hello.
CURSOR=$WORK/fr.cursor
# follow N: starts FR's follower (its JSON lines in follow-N.out); $FOLLOWER is its pid (`ip
# netns exec` becomes the command, so the pid is the follower's own).
follow() {
    CROSSMATCH_API=$(api_of fr) CROSSMATCH_TOKEN=$FR_TOKEN ip netns exec "$PREFIX-fr" \
        "$BIN" alerts --follow --cursor-file "$CURSOR" >"$WORK/follow-$1.out" 2>"$WORK/follow-$1.err" &
    FOLLOWER=$!
}
follow 1
wait_for "FR's follower to open the stream" test -s "$CURSOR"

# 1. A match both ways: the README's record, added at DE and at FR with `records add` (the
#    identifier on stdin, never an argument), seen with `alerts --json`.
RECORD=(--kind account --platform x --category terrorism/propaganda --handling H1 --evaluation B2
        --expires-in-days 90)
# add MEMBER HANDLE: adds HANDLE at MEMBER; prints the new record's id.
add() {
    echo "$2" | cli "$1" records add "${RECORD[@]}" --json | head -n 1 | json 'print(v["id"])'
}
DE_RECORD=$(add de '@example')
FR_RECORD=$(add fr '@example')
[[ $DE_RECORD =~ ^[0-9]+$ && $FR_RECORD =~ ^[0-9]+$ ]] || fail "records add printed no record id"
# alerted MEMBER RECORD OTHER: MEMBER holds an alert on RECORD naming OTHER.
alerted() {
    cli "$1" alerts --json | json "sys.exit(0 if any($2 in a['records'] and any(c['member'] == '$3' for c in a['counterparts']) for a in v['alerts']) else 1)"
}
wait_for "DE's alert naming FR" alerted de "$DE_RECORD" FR
wait_for "FR's alert naming DE" alerted fr "$FR_RECORD" DE
say "1. a match both ways: DE's record #$DE_RECORD is alerted naming FR, FR's #$FR_RECORD naming DE"

# 2. The stream resumes after its client is killed. The follower prints FR's alert.opened;
#    once its cursor file holds that event's id, it is killed with SIGKILL. While it is dead,
#    FR and DE both add a second account (FR first, so FR's alert opens when DE's add
#    arrives); restarted from its cursor file, the follower must print exactly that missed
#    event first: the next seq of the same incarnation, an alert.opened on FR's new record.
# has_lines N K: follow-N.out has at least K lines.
has_lines() { [[ $(wc -l <"$WORK/follow-$1.out") -ge $2 ]]; }
wait_for "FR's follower to print the match" has_lines 1 1
FIRST=$(head -n 1 "$WORK/follow-1.out")
FIRST_ID=$(json 'print(v["id"])' <<<"$FIRST")
json "sys.exit(0 if v['type'] == 'alert.opened' and $FR_RECORD in v['data']['alert']['records'] else 1)" \
    <<<"$FIRST" || fail "the follower's first line is not the match's alert.opened: $FIRST"
cursor_is() { [[ $(cat "$CURSOR") == "$1" ]]; }
wait_for "FR's cursor file to hold the printed event" cursor_is "$FIRST_ID"
kill -KILL "$FOLLOWER"
wait "$FOLLOWER" 2>/dev/null || true
FR_SECOND=$(add fr '@example_second')
DE_SECOND=$(add de '@example_second')
[[ $FR_SECOND =~ ^[0-9]+$ && $DE_SECOND =~ ^[0-9]+$ ]] || fail "records add printed no record id"
wait_for "FR's alert on its second record" alerted fr "$FR_SECOND" DE
follow 2
wait_for "the restarted follower to print the missed event" has_lines 2 1
MISSED=$(head -n 1 "$WORK/follow-2.out")
python3 - "$FIRST_ID" "$FR_SECOND" "$MISSED" <<'PY' || fail "the restarted follower did not print exactly the missed event first: $MISSED"
import json, sys
first_id, record, line = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
incarnation, seq = first_id.rsplit("-", 1)
assert line["id"] == f"{incarnation}-{int(seq) + 1}", (first_id, line["id"])
assert line["type"] == "alert.opened", line["type"]
assert record in line["data"]["alert"]["records"], line["data"]["alert"]["records"]
PY
kill -KILL "$FOLLOWER"
wait "$FOLLOWER" 2>/dev/null || true
say "2. the stream resumed after SIGKILL: the restarted follower printed exactly the missed event, $(json 'print(v["id"])' <<<"$MISSED") after $FIRST_ID"

# 3. DE's webhook: the receiver verified (HMAC-SHA256 over id, timestamp and body, with the key
#    DE signs with) at least one alert.opened delivery.
delivered() {
    python3 - "$WORK/webhook.out" <<'PY'
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8") if line.strip()]
sys.exit(0 if any(l.get("type") == "alert.opened" and l.get("verified") is True for l in lines) else 1)
PY
}
wait_for "a verified alert.opened delivery at DE's webhook receiver" delivered
say "3. DE's webhook delivered $(grep -c '"verified": true' "$WORK/webhook.out") events to the receiver, each with a valid signature, alert.opened among them"

say "everything shown"
