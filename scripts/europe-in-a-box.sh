#!/usr/bin/env bash
# Europe in a box: a federation of up to 28 members, one per capital (the 27 member states of
# the European Union and the United Kingdom, tests/data/europe-capitals.txt), each `crossmatch
# run` in its own network namespace on one bridge, every connection between two of them through
# the WAN relay at the one-way delay their distance gives (tests/data/europe-delays.txt), with
# jitter. It runs the `europe` measurement of crossmatch-faults twice, with the delays and with
# every delay 0, and prints publish-to-alert latency, the time one member's 26,000-account
# import takes to reach every other member, and the bytes each member received for it.
# docs/TESTING.md and docs/BENCHMARKS.md, "Europe in a box".
#
# Run as root from the repository's root:
#   scripts/europe-in-a-box.sh [MEMBERS]            # 28 by default; builds the release binaries
# Environment: PROFILE=debug (the debug binaries), SEED=N, GIVE_UP_SECS (300), or the binaries
# themselves: CROSSMATCH=path FAULTS=path RELAY=path (then nothing is built).
# Exit 0 when both runs completed, 1 when one failed, 2 when it could not run. crossmatch-faults
# removes its namespaces, nodes and relay on every exit path.

set -euo pipefail

MEMBERS=${1:-28}
PROFILE=${PROFILE:-release}
GIVE_UP_SECS=${GIVE_UP_SECS:-300}
SEED=${SEED:-$(( $(date +%s) % 1000000 ))}

if [[ $(id -u) -ne 0 ]]; then
    echo "europe-in-a-box.sh: needs root to create network namespaces" >&2
    exit 2
fi
cd "$(dirname "$0")/.."

if [[ -z ${CROSSMATCH:-}${FAULTS:-}${RELAY:-} ]]; then
    flag=()
    [[ $PROFILE == release ]] && flag=(--release)
    cargo build "${flag[@]}" -p crossmatch-node --bin crossmatch \
        -p crossmatch-tests --bin crossmatch-faults --bin crossmatch-relay
fi
CROSSMATCH=${CROSSMATCH:-target/$PROFILE/crossmatch}
FAULTS=${FAULTS:-target/$PROFILE/crossmatch-faults}
RELAY=${RELAY:-target/$PROFILE/crossmatch-relay}
for binary in "$CROSSMATCH" "$FAULTS" "$RELAY"; do
    [[ -x $binary ]] || { echo "europe-in-a-box.sh: no binary at $binary" >&2; exit 2; }
done

echo "europe-in-a-box: $MEMBERS members, $PROFILE binaries, seed $SEED; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for delays in wan zero; do
    extra=()
    [[ $delays == zero ]] && extra=(--zero-delay)
    echo "europe-in-a-box: the run with $([[ $delays == zero ]] && echo 'every delay 0' || echo 'the capitals'\'' delays')"
    "$FAULTS" europe --members "$MEMBERS" "${extra[@]}" --seed "$SEED" \
        --bin "$CROSSMATCH" --relay "$RELAY" --give-up-secs "$GIVE_UP_SECS"
    echo "europe-in-a-box: load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
done
