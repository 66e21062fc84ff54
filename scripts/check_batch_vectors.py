#!/usr/bin/env python3
"""Independent check of protocol/tests/vectors/batches.json.

Re-verifies every batch vector with other people's code (cbor2, pycose, blake3 from PyPI):
COSE_Sign1 signatures with the federation id as external AAD, batch hashes over the
Sig_structure, entry digests, and that every CBOR item is in deterministic encoding.
Exits non-zero on any disagreement with the file.
"""

import sys
import json

import blake3
import cbor2
from pycose.keys.curves import Ed25519
from pycose.keys.okp import OKPKey
from pycose.messages import CoseMessage

CONTENT_TYPE = "application/crossmatch-manifest+cbor"
ENTRY_CONTEXT = "crossmatch entry v1"
BATCH_CONTEXT = "crossmatch batch v1"
ENTRY_OPS = {1: "add", 2: "retract", 3: "status", 4: "tag"}


def deterministic(data: bytes):
    """Decodes one CBOR item and insists that data is its deterministic encoding."""
    value = cbor2.loads(data)
    if cbor2.dumps(value, canonical=True) != data:
        raise ValueError("not deterministic cbor")
    return value


def derive(context: str, data: bytes) -> bytes:
    return blake3.blake3(data, derive_key_context=context).digest()


def verify(wire: bytes, federation_id: bytes, public_key: bytes):
    """Returns (manifest fields, batch hash, entries) or raises ValueError."""
    manifest, entries = deterministic(wire)
    tagged = cbor2.loads(manifest)
    if not isinstance(tagged, cbor2.CBORTag) or tagged.tag != 18:
        raise ValueError("not a tagged cose_sign1")
    if cbor2.dumps(tagged, canonical=True) != manifest:
        raise ValueError("cose_sign1 not canonical")
    protected, unprotected, payload, signature = tagged.value
    if unprotected != {}:
        raise ValueError("unprotected header not empty")
    if deterministic(protected) != {1: -8, 3: CONTENT_TYPE, 4: public_key}:
        if cbor2.loads(protected).get(4) != public_key:
            raise ValueError("unknown origin")
        raise ValueError("unexpected protected header")
    message = CoseMessage.decode(manifest)
    message.external_aad = federation_id
    message.key = OKPKey(crv=Ed25519, x=public_key)
    if not message.verify_signature():
        raise ValueError("bad signature")
    sig_structure = cbor2.dumps(["Signature1", protected, federation_id, payload])
    header = deterministic(payload)
    if header[0] != 1:
        raise ValueError("unsupported version")
    if len(entries) != len(header[6]):
        raise ValueError("entry count differs from digest count")
    return header, derive(BATCH_CONTEXT, sig_structure), entries


def check_entry(entry_hex, digest: bytes, expected: dict, created_at_ms: int) -> None:
    if entry_hex is None:
        assert not expected["valid"], "redacted entry listed as valid"
        return
    entry = bytes.fromhex(entry_hex)
    valid = derive(ENTRY_CONTEXT, entry) == digest
    if valid:
        fields = deterministic(entry)
        op = ENTRY_OPS.get(fields[0])
        valid = op is not None and len(fields[1]) == 16 and len(fields[2]) == 32
    assert valid == expected["valid"], f"entry validity differs: {expected}"
    if not valid:
        return
    assert op == expected["op"], (op, expected["op"])
    assert fields[1].hex() == expected["salt_hex"]
    assert fields[2].hex() == expected["token_hex"]
    if op == "add":
        assert created_at_ms < fields[8] == expected["expires_at_ms"]
        assert fields[4] == expected["category"]
        assert f"H{fields[5]}" == expected["handling"]
        assert fields[6] == expected["evaluation"]
        assert fields.get(7) == expected["activity_per_day"]
        # The algorithmic marker is a CBOR true when present, and absent on an analyst's add.
        assert fields.get(13, False) is expected["algorithmic"]
        assert 13 not in fields or fields[13] is True
    elif op == "tag":
        assert created_at_ms < fields[8] == expected["expires_at_ms"]
        assert fields[8] - created_at_ms <= 400 * 86_400_000
        assert isinstance(fields[12], bytes) and len(fields[12]) == 16
        assert fields[12].hex() == expected["community_hex"]
    elif op == "status":
        assert fields[11] == expected["at_ms"]


def main(path: str) -> int:
    with open(path) as f:
        vectors = json.load(f)
    federation_id = bytes.fromhex(vectors["federation_id_hex"])
    public_key = bytes.fromhex(vectors["origin_public_key_hex"])
    passed = failed = 0
    for index, batch in enumerate(vectors["batches"]):
        label = f"batch {index} ({batch.get('why') or 'valid'})"
        try:
            try:
                header, batch_hash, entries = verify(
                    bytes.fromhex(batch["wire_hex"]), federation_id, public_key
                )
            except (ValueError, TypeError, KeyError, cbor2.CBORDecodeError) as refusal:
                assert not batch["valid"], f"refused here ({refusal}) but listed as valid"
                passed += 1
                continue
            assert batch["valid"], "verifies here but listed as invalid"
            assert batch_hash.hex() == batch["batch_hash_hex"], "batch hash differs"
            assert header[1] == batch["generation"] and header[2] == batch["seq"]
            assert header[3].hex() == batch["prev_hex"]
            assert header[5] == batch["created_at_ms"]
            if header[1] == 1 and header[2] == 1:
                assert header[3] == bytes(32), "genesis prev must be zero"
            digests = header[6]
            assert [d.hex() for d in digests] == batch["entry_digests_hex"]
            for entry_hex, digest, expected in zip(entries, digests, batch["entries"]):
                wire_hex = None if entry_hex is None else entry_hex.hex()
                assert wire_hex == expected["entry_hex"], "entry bytes differ"
                check_entry(wire_hex, digest, expected, header[5])
            passed += 1
        except AssertionError as error:
            print(f"FAIL {label}: {error}")
            failed += 1
    print(f"batch vectors: {passed} passed, {failed} failed")
    ops = {
        entry.get("op")
        for batch in vectors["batches"]
        for entry in batch.get("entries", [])
        if entry.get("valid")
    }
    if ops != set(ENTRY_OPS.values()):
        print(f"FAIL the vectors do not use every op: {sorted(ops)}")
        failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "protocol/tests/vectors/batches.json"))
