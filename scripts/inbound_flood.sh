#!/usr/bin/env bash
# Measures whether outsiders can keep a roster member from connecting in (hardening item 16).
#
# Run as root (it creates network namespaces): scripts/inbound_flood.sh [path/to/crossmatch]
#
# Six network namespaces on one bridge, each with its own address: a victim node
# (10.231.0.1), a member node (10.231.0.2) and four outsiders (10.231.0.11-14). The member
# listens only on loopback inside its namespace, so the victim cannot dial it: the member can
# only connect by dialling in, as one behind a firewall or NAT does. The outsiders open TCP
# connections to the victim's mesh port from their four addresses, as many as they are let
# in, and hold each one silent (no Noise, no Yamux) until the victim closes it; then they
# open another at once. Then the member starts, and the script measures how long it takes
# until the victim counts it as a connected peer (GET /v1/status, "peers").
#
# Three scenarios, each with fresh nodes: no outsiders; outsiders, with the member's address
# listed in the roster; outsiders, with no address listed for the member (a member at an
# address the victim has never seen). Environment: CONNECTIONS_PER_OUTSIDER (default 10:
# two more than the 8 the victim admits per address, so a freed slot is taken again at
# once), GIVE_UP_SECS (default 60).
#
# The namespaces are named cmflood-*; they are removed on exit, whatever happens.

set -euo pipefail

BIN=${1:-target/debug/crossmatch}
CONNECTIONS_PER_OUTSIDER=${CONNECTIONS_PER_OUTSIDER:-10}
GIVE_UP_SECS=${GIVE_UP_SECS:-60}
PREFIX=cmflood
OUTSIDERS=(11 12 13 14)
MESH_PORT=7400

if [[ $(id -u) -ne 0 ]]; then
    echo "inbound_flood.sh: needs root to create network namespaces" >&2
    exit 2
fi
for tool in ip python3 curl; do
    command -v "$tool" >/dev/null || { echo "inbound_flood.sh: $tool not found" >&2; exit 2; }
done
[[ -x $BIN ]] || { echo "inbound_flood.sh: no crossmatch binary at $BIN (cargo build first)" >&2; exit 2; }
BIN=$(realpath "$BIN")

WORK=$(mktemp -d)
PIDS=()
NAMESPACES=(hub victim member "${OUTSIDERS[@]/#/out}")
# Stops every process started here: those listed, and any left in the namespaces made here.
stop_all() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for ns in "${NAMESPACES[@]}"; do
        for pid in $(ip netns pids "$PREFIX-$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    done
    wait 2>/dev/null || true
    PIDS=()
}
cleanup() {
    stop_all
    for ns in "${NAMESPACES[@]}"; do ip netns del "$PREFIX-$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

in_ns() { local ns=$1; shift; ip netns exec "$PREFIX-$ns" "$@"; }

# The bridge lives in a namespace of its own, so the host's network is left alone.
ip netns add "$PREFIX-hub"
in_ns hub ip link add br0 type bridge
in_ns hub ip link set br0 up
attach() {
    local ns=$1 last=$2
    ip netns add "$PREFIX-$ns"
    ip link add "cmf-$ns" type veth peer name "cmf-$ns-br"
    ip link set "cmf-$ns" netns "$PREFIX-$ns"
    ip link set "cmf-$ns-br" netns "$PREFIX-hub"
    in_ns hub ip link set "cmf-$ns-br" master br0 up
    in_ns "$ns" ip addr add "10.231.0.$last/24" dev "cmf-$ns"
    in_ns "$ns" ip link set "cmf-$ns" up
    in_ns "$ns" ip link set lo up
}
attach victim 1
attach member 2
for last in "${OUTSIDERS[@]}"; do attach "out$last" "$last"; done

# Keys, secret, roster, tokens. Each node's API listens on loopback inside its own namespace.
cd "$WORK"
"$BIN" secret new --out federation.secret >/dev/null
"$BIN" federation new --secret federation.secret --out roster.base.toml >/dev/null
for node in victim member; do
    id=$([[ $node == victim ]] && echo V || echo M)
    # The node and governance keys and the public card; the config is written below.
    "$BIN" init --member "$id" --dir "init-$node" >/dev/null
    cp "init-$node/node.key" "$node.key"
    "$BIN" federation add-member --roster roster.base.toml --card "init-$node/member.toml" >/dev/null
    printed=$("$BIN" api-token new --name "monitor-$node" --role monitor)
    sed -n 's/^bearer token: *//p' <<<"$printed" >"$node.bearer"
    { echo "[[tokens]]"; sed -n '/\[\[tokens\]\]/,$p' <<<"$printed" | tail -n +2; } >"$node-tokens.toml"
    chmod 600 "$node-tokens.toml"
done
for node in victim member; do
    id=$([[ $node == victim ]] && echo V || echo M)
    "$BIN" federation sign --roster roster.base.toml --governance-key "init-$node/governance.key" \
        --member "$id" >/dev/null
done
"$BIN" federation seal --roster roster.base.toml --out roster.sealed.toml >/dev/null

# roster [MEMBER_ADDRESS]: writes roster.toml, the sealed roster with both members' records
# (the member's with MEMBER_ADDRESS, or with no address when it is empty).
write_roster() {
    cp roster.sealed.toml roster.toml
    "$BIN" member-record --roster roster.toml --key victim.key --seq 1 \
        --address "/ip4/10.231.0.1/tcp/$MESH_PORT" --contact "desk@victim.example" >/dev/null
    local address=()
    [[ -n $1 ]] && address=(--address "$1")
    "$BIN" member-record --roster roster.toml --key member.key --seq 1 "${address[@]}" \
        --contact "desk@member.example" >/dev/null
}

# config NODE LISTEN: writes NODE.toml with a fresh data directory.
write_config() {
    local node=$1 listen=$2
    rm -rf "data-$node"
    cat >"$node.toml" <<EOF
member_id = "$([[ $node == victim ]] && echo V || echo M)"
data_dir = "data-$node"
key_file = "$node.key"
secret_file = "federation.secret"
roster_file = "roster.toml"
listen_addresses = ["$listen"]
recovery_deadline_secs = 2
sync_interval_secs = 2

[api]
listen = "127.0.0.1:7500"
tokens_file = "$node-tokens.toml"
EOF
    chmod 600 "$node.toml"
}

# status NODE: the node's /v1/status, or nothing.
status() {
    in_ns "$1" curl -sf -H "Authorization: Bearer $(cat "$1.bearer")" http://127.0.0.1:7500/v1/status || true
}

start_node() {
    # `ip netns exec` runs the command in its own process: $! is the node.
    ip netns exec "$PREFIX-$1" "$BIN" run --config "$WORK/$1.toml" >"$WORK/$1.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        [[ -n $(status "$1") ]] && return 0
        sleep 0.1
    done
    echo "inbound_flood.sh: the $1 node did not start; its log:" >&2
    cat "$WORK/$1.log" >&2
    exit 1
}

# An outsider: CONNECTIONS_PER_OUTSIDER threads, each holding one silent connection at a time.
cat >outsider.py <<'EOF'
import socket, sys, threading, time
target = (sys.argv[1], int(sys.argv[2]))
def hold():
    while True:
        try:
            with socket.create_connection(target, timeout=5) as s:
                s.settimeout(None)
                while s.recv(256):
                    pass
        except OSError:
            pass
        time.sleep(0.05)
for _ in range(int(sys.argv[3])):
    threading.Thread(target=hold, daemon=True).start()
while True:
    time.sleep(3600)
EOF

scenario() {
    local name=$1 flood=$2 member_addresses=$3
    write_roster "$member_addresses"
    write_config victim "/ip4/10.231.0.1/tcp/$MESH_PORT"
    write_config member "/ip4/127.0.0.1/tcp/$MESH_PORT"
    start_node victim
    if [[ $flood == yes ]]; then
        for last in "${OUTSIDERS[@]}"; do
            ip netns exec "$PREFIX-out$last" python3 outsider.py 10.231.0.1 "$MESH_PORT" \
                "$CONNECTIONS_PER_OUTSIDER" &
            PIDS+=($!)
        done
        sleep 3
    fi
    local refused_before
    refused_before=$(status victim | python3 -c 'import json,sys; print(json.load(sys.stdin)["refused_connections"])')
    local t0 t1 admitted=no
    t0=$(date +%s.%N)
    start_node member
    while :; do
        t1=$(date +%s.%N)
        if status victim | grep -q '"peers":1'; then admitted=yes; break; fi
        if python3 -c "import sys; sys.exit(0 if $t1 - $t0 > $GIVE_UP_SECS else 1)"; then break; fi
        sleep 0.2
    done
    local refused_after
    refused_after=$(status victim | python3 -c 'import json,sys; print(json.load(sys.stdin)["refused_connections"])')
    local waited
    waited=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
    if [[ $admitted == yes ]]; then
        printf '%-34s member admitted after %5s s (victim refused %s connections meanwhile)\n' \
            "$name:" "$waited" "$((refused_after - refused_before))"
    else
        printf '%-34s member NOT admitted in %s s (victim refused %s connections meanwhile)\n' \
            "$name:" "$GIVE_UP_SECS" "$((refused_after - refused_before))"
    fi
    stop_all
}

scenario "no outsiders" no "/ip4/10.231.0.2/tcp/$MESH_PORT"
scenario "4 outsiders, member listed" yes "/ip4/10.231.0.2/tcp/$MESH_PORT"
scenario "4 outsiders, member not listed" yes ""
