#!/usr/bin/env python3
"""Independent check of protocol/tests/vectors/tokens.json.

Recomputes every token from its recorded canonical form with the `blake3` package, and checks
every phone case against the `phonenumbers` package (Python port of libphonenumber): the
canonical form must be `v1|phone|` + the E.164 form of the input parsed with the case's region,
and the number must be valid. Phone refusals for invalid numbers must be invalid there too.
Shares no code with the Rust implementation.

Usage: check_token_vectors.py PATH/TO/tokens.json
"""

import json
import sys

import blake3
import phonenumbers

TOKEN_KEY_CONTEXT = "crossmatch token key v1"
KINDS = {"account", "account_id", "email", "phone", "url", "domain"}


def epoch_key(federation_id: bytes, secret: bytes, epoch: int) -> bytes:
    material = federation_id + secret + epoch.to_bytes(4, "big")
    return blake3.blake3(material, derive_key_context=TOKEN_KEY_CONTEXT).digest()


def e164(text: str, region):
    number = phonenumbers.parse(text, region.upper() if region else None)
    valid = phonenumbers.is_valid_number(number)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), valid


def check_shape(canonical: str, kind: str):
    """The canonical form's prefix fields; returns a problem or None."""
    fields = canonical.split("|", 3)
    if fields[0] != "v1" or len(fields) < 3 or fields[1] not in KINDS:
        return "not v1|<kind>|..."
    if fields[1] in ("account", "account_id"):
        if len(fields) != 4 or not fields[2] or not fields[3]:
            return "account forms are v1|<kind>|<platform>|<value>"
        if kind not in ("account", "account_id"):
            return "account form for kind " + kind
    elif fields[1] != kind:
        return "kind field differs from the case's kind"
    return None


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as file:
        vectors = json.load(file)

    key = epoch_key(
        bytes.fromhex(vectors["federation_id_hex"]),
        bytes.fromhex(vectors["secret_hex"]),
        vectors["epoch"],
    )
    problems = []
    n_phones = 0
    for case in vectors["cases"]:
        canonical = case["canonical"]
        shape = check_shape(canonical, case["kind"])
        if shape:
            problems.append(f"{canonical!r}: {shape}")
        token = blake3.blake3(canonical.encode("utf-8"), key=key).hexdigest()
        if token != case["token_hex"]:
            problems.append(f"{canonical!r}: token {token}, recorded {case['token_hex']}")
        if case["kind"] == "phone":
            n_phones += 1
            try:
                formatted, valid = e164(case["input"], case["region"])
            except phonenumbers.NumberParseException as error:
                problems.append(f"phone {case['input']!r}: phonenumbers refuses it: {error}")
                continue
            if canonical != "v1|phone|" + formatted:
                problems.append(f"phone {case['input']!r}: phonenumbers gives {formatted}")
            if not valid:
                problems.append(f"phone {case['input']!r}: phonenumbers says invalid")

    n_invalid_phones = 0
    for reject in vectors["rejects"]:
        if reject["kind"] not in KINDS:
            problems.append(f"reject {reject['input']!r}: unknown kind")
        if reject["rule"] == "phone-invalid":
            n_invalid_phones += 1
            try:
                _, valid = e164(reject["input"], reject["region"])
            except phonenumbers.NumberParseException:
                valid = False
            if valid:
                problems.append(f"phone {reject['input']!r}: phonenumbers says valid")

    for problem in problems:
        print("MISMATCH", problem)
    status = "ok" if not problems else f"{len(problems)} mismatches"
    print(
        f"{sys.argv[1]}: {len(vectors['cases'])} tokens recomputed, {n_phones} phone numbers and "
        f"{n_invalid_phones} invalid numbers checked with phonenumbers "
        f"{phonenumbers.__version__}, {len(vectors['rejects'])} refusals listed: {status}"
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
