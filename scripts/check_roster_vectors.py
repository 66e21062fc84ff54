#!/usr/bin/env python3
"""Independent check of protocol/tests/vectors/roster.json.

Re-verifies the roster vectors with other people's code (cbor2, blake3 and cryptography from
PyPI): deterministic CBOR, roster hashes, governance signatures (all members for the founding
roster, k current members for the successor), the successor rules, the key change, the member
record, the Ed25519 -> X25519 conversion (libsodium's, computed here from the curve equation),
and the sealed secret: its ephemeral key, its opening with ChaCha20-Poly1305 and the fingerprint.
Exits non-zero on any disagreement with the file.
"""

import hashlib
import json
import sys

import blake3
import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

P = 2**255 - 19


def deterministic(data: bytes):
    """Decodes one CBOR item and insists that data is its deterministic encoding."""
    value = cbor2.loads(data)
    if cbor2.dumps(value, canonical=True) != data:
        raise ValueError("not deterministic cbor")
    return value


def derive(context: str, data: bytes) -> bytes:
    return blake3.blake3(data, derive_key_context=context).digest()


def ed_public(seed: bytes) -> bytes:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def x_public(secret: bytes) -> bytes:
    key = x25519.X25519PrivateKey.from_private_bytes(secret).public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def ed_to_x25519_public(public: bytes) -> bytes:
    """libsodium's crypto_sign_ed25519_pk_to_curve25519: u = (1 + y) / (1 - y) mod p."""
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)
    return ((1 + y) * pow(1 - y, P - 2, P) % P).to_bytes(32, "little")


def ed_to_x25519_secret(seed: bytes) -> bytes:
    """libsodium's crypto_sign_ed25519_sk_to_curve25519 (before clamping, which X25519 does)."""
    return hashlib.sha512(seed).digest()[:32]


def signed_by(public: bytes, signature: bytes, message: bytes) -> bool:
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
        return True
    except InvalidSignature:
        return False


def check_body(body: dict) -> None:
    members = body[10]
    n, k = len(members), body[4]
    assert 1 <= n <= 256 and 2 * k > n and k <= n, "threshold rule"
    ids = [m[0] for m in members]
    assert ids == sorted(ids) and len(set(ids)) == n, "members sorted by id, unique"
    keys = [key for m in members for key in [m[2], m[3], *m[5]]]
    assert len(set(keys)) == len(keys), "every ed25519 key distinct"
    for m in members:
        assert m[4] == ed_to_x25519_public(m[2]), f"{m[0]}: sealing key is not the conversion"
    assert body[1] >= 1 and body[2] >= 1 and 1 <= body[5] <= 400


def roster_hash(body_bytes: bytes) -> bytes:
    return derive(CONTEXTS["roster_hash"], body_bytes)


def valid_signers(signatures, digest: bytes, keys: dict) -> set:
    message = CONTEXTS["roster_signature"].encode() + digest
    return {m for m, sig in signatures if m in keys and signed_by(keys[m], sig, message)}


def key_change_valid(change: dict, federation: bytes) -> bool:
    signed = {0: change[0], 1: change[1], 2: change[2], 3: change[3]}
    if 6 in change:  # the old key's final head: [generation, seq, batch hash]
        signed[6] = change[6]
    message = CONTEXTS["key_change"].encode() + cbor2.dumps(signed, canonical=True)
    return (
        change[0] == federation
        and change[2] != change[3]
        and signed_by(change[2], change[4], message)
        and signed_by(change[3], change[5], message)
    )


def successor_problem(current: dict, wire: bytes):
    """None when wire is a valid successor of current, otherwise the reason."""
    roster = deterministic(wire)
    body = roster[0]
    check_body(body)
    if body[0] != current[0]:
        return "other federation"
    if body[1] != current[1] + 1:
        return "not the next version"
    if body[2] != current[2]:
        rotation = body.get(9)
        if not (body[2] > current[2] and rotation and rotation[0] == current[2]
                and rotation[1] == current[8]):
            return "epoch change without a rotation that follows"
    old = {m[0]: m for m in current[10]}
    changes = [c for c in roster[2] if key_change_valid(c, body[0])]
    for member in body[10]:
        previous = old.get(member[0])
        later = [member[2]] + list(member[5])
        for retired in member[5]:
            # Every retired key is backed by a key change carried in this very roster.
            carried = [c for c in changes if c[1] == member[0] and c[2] == retired and c[3] in later]
            if previous and retired in previous[5]:
                backed = bool(carried)
            else:
                backed = previous and retired == previous[2] and any(
                    c[3] == member[2] for c in carried
                )
            if not backed:
                return f"{member[0]}: unbacked retired key"
    digest = roster_hash(cbor2.dumps(body, canonical=True))
    keys = {m[0]: m[3] for m in current[10]}
    have = valid_signers(roster[1], digest, keys)
    if len(have) < current[4]:
        return f"{len(have)} signatures of {current[4]}"
    return None


def main(path: str) -> None:
    global CONTEXTS
    vectors = json.load(open(path))
    CONTEXTS = vectors["contexts"]
    now_ms = vectors["now_ms"]
    federation = bytes.fromhex(vectors["federation_id_hex"])

    seeds = {}
    for member in vectors["members"]:
        seed = bytes.fromhex(member["node_seed_hex"])
        seeds[member["id"]] = seed
        assert ed_public(seed).hex() == member["node_key_hex"]
        assert ed_public(bytes.fromhex(member["governance_seed_hex"])).hex() == member["governance_key_hex"]
        secret = ed_to_x25519_secret(seed)
        assert secret.hex() == member["x25519_secret_hex"], member["id"]
        sealing = bytes.fromhex(member["sealing_key_hex"])
        assert ed_to_x25519_public(bytes.fromhex(member["node_key_hex"])) == sealing, member["id"]
        assert x_public(secret) == sealing, member["id"]

    # The founding roster: hash, and every member's governance signature.
    founding = vectors["founding"]
    wire = deterministic(bytes.fromhex(founding["wire_hex"]))
    body = wire[0]
    body_bytes = cbor2.dumps(body, canonical=True)
    assert body_bytes.hex() == founding["body_cbor_hex"]
    assert roster_hash(body_bytes).hex() == founding["hash_hex"]
    check_body(body)
    assert body[3] > now_ms
    keys = {m[0]: m[3] for m in body[10]}
    assert valid_signers(wire[1], roster_hash(body_bytes), keys) == set(keys), "founding signatures"
    assert [s["member"] for s in founding["signatures"]] == [m for m, _ in wire[1]]

    # The successor and the invalid ones.
    successor = vectors["successor"]["roster"]
    succ_wire = bytes.fromhex(successor["wire_hex"])
    assert successor_problem(body, succ_wire) is None
    succ_body = deterministic(succ_wire)[0]
    assert roster_hash(cbor2.dumps(succ_body, canonical=True)).hex() == successor["hash_hex"]
    assert deterministic(succ_wire)[2][0] == deterministic(
        bytes.fromhex(vectors["successor"]["key_change_wire_hex"])
    )
    change = deterministic(bytes.fromhex(vectors["successor"]["key_change_wire_hex"]))
    head = vectors["successor"]["key_change_final_head"]
    assert change[6] == [head["generation"], head["seq"], bytes.fromhex(head["hash_hex"])]
    for invalid in vectors["invalid_successors"]:
        problem = successor_problem(body, bytes.fromhex(invalid["wire_hex"]))
        assert problem is not None, f"accepted: {invalid['why']}"

    # The member record, signed by DE's node key.
    record = deterministic(bytes.fromhex(vectors["member_record"]["wire_hex"]))
    unsigned = {key: value for key, value in record.items() if key != 5}
    message = CONTEXTS["member_record"].encode() + cbor2.dumps(unsigned, canonical=True)
    node_keys = {m[0]: m[2] for m in body[10]}
    assert record[0] == federation and record[2] >= 1 and len(record[3]) <= 8
    assert signed_by(node_keys[record[1]], record[5], message), "member record signature"

    # The sealed secret: rebuilt from the ephemeral secret, and opened with the member's key.
    vector = vectors["sealed_secret"]
    sealed = deterministic(bytes.fromhex(vector["wire_hex"]))
    member, epoch = vector["member"], vector["epoch"]
    assert (sealed[0], sealed[1], sealed[2]) == (federation, epoch, member)
    ephemeral_secret = bytes.fromhex(vector["ephemeral_secret_hex"])
    assert x_public(ephemeral_secret) == sealed[3], "ephemeral public key"
    recipient_secret = x25519.X25519PrivateKey.from_private_bytes(ed_to_x25519_secret(seeds[member]))
    shared = recipient_secret.exchange(x25519.X25519PublicKey.from_public_bytes(sealed[3]))
    recipient = x_public(ed_to_x25519_secret(seeds[member]))
    assert shared == x25519.X25519PrivateKey.from_private_bytes(ephemeral_secret).exchange(
        x25519.X25519PublicKey.from_public_bytes(recipient)
    )
    context = sealed[3] + recipient + federation + epoch.to_bytes(4, "big") + member.encode()
    key = derive(CONTEXTS["seal"], shared + context)
    opened = ChaCha20Poly1305(key).decrypt(bytes(12), sealed[4], context)
    assert opened.hex() == vector["secret_hex"], "opened secret"
    fingerprint = derive(CONTEXTS["secret_fingerprint"], opened)
    assert fingerprint.hex() == vector["fingerprint_hex"]
    phone = "-".join(fingerprint[i:i + 2].hex() for i in range(0, 16, 2))
    assert phone == vector["phone_form"]
    assert fingerprint == succ_body[8], "the successor carries the new secret's fingerprint"
    print(f"{path}: founding, successor, {len(vectors['invalid_successors'])} invalid successors, "
          "member record and sealed secret agree")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "protocol/tests/vectors/roster.json")
