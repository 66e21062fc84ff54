#!/usr/bin/env python3
"""Recomputes the ids of the observables in STIX 2.1 bundles crossmatch exported.

Independent of the Rust code: the standard library only. An observable's id is
`<type>--UUIDv5(00abedb4-aa42-466c-9c01-fed23315a9b7, JCS(contributing properties))`
(STIX 2.1 section 2.9; docs/STIX.md section 1.1). crossmatch writes only string properties with
ASCII names, so JCS is the JSON of the sorted properties without white space. Every other
object's id must be a UUIDv4, except the fixed objects, whose ids are published.

Usage: check_stix_ids.py BUNDLE.json...
"""

import json
import sys
import uuid

NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
CONTRIBUTING = {
    "user-account": ("account_type", "user_id", "account_login"),
    "email-addr": ("value",),
    "url": ("value",),
    "domain-name": ("value",),
}
FIXED = {
    "identity--4afb678d-4128-421e-91a5-36b62c4dccd3",
    "marking-definition--4e2c8bad-945a-4163-9711-975618a05204",
    "marking-definition--cc6d57b7-1f5e-4f22-8be8-1d77606cc08f",
    "marking-definition--4c3ed6d2-07f5-4618-ae49-c228f36b668b",
    "marking-definition--ff9c8716-0931-46e2-8415-9cf7d96e6836",
    "extension-definition--2955fb0e-a111-4b7c-84e7-88c961177866",
    "extension-definition--a0d0ecf1-be4c-4695-9b67-3de2eff8175d",
    "extension-definition--9a52d586-2c1d-4dcf-b04f-d99150236b04",
}

# The published vectors (docs/STIX.md section 1.1): the check checks itself first.
VECTORS = [
    ("domain-name", {"value": "example.com"}, "domain-name--bedb4899-d24b-5401-bc86-8f6b4cc18ec7"),
    ("email-addr", {"value": "jdoe@example.com"}, "email-addr--6deb37bd-12b7-54ae-805f-5f7146f3d171"),
    ("url", {"value": "https://example.com/"}, "url--be22e93a-5e33-5678-b19f-8b4ea06df0bd"),
    (
        "user-account",
        {"account_login": "example_handle", "account_type": "twitter"},
        "user-account--04ad4fe1-51f8-58bb-ac93-0c06287f4598",
    ),
    (
        "user-account",
        {"account_type": "telegram", "user_id": "123456789"},
        "user-account--41516365-9ad7-5140-acc9-0db7b8de381d",
    ),
]


def sco_id(kind, props):
    canonical = json.dumps(dict(sorted(props.items())), separators=(",", ":"), ensure_ascii=False)
    return f"{kind}--{uuid.uuid5(NAMESPACE, canonical)}"


def check_bundle(path):
    """The problems of one bundle, and how many objects it holds."""
    with open(path, encoding="utf-8") as file:
        bundle = json.load(file)
    problems = []
    objects = bundle.get("objects", [])
    for index, obj in enumerate(objects):
        kind, oid = obj.get("type"), obj.get("id", "")
        if kind in CONTRIBUTING:
            props = {name: obj[name] for name in CONTRIBUTING[kind] if name in obj}
            if oid != sco_id(kind, props):
                # The position only: an observable's id is a hash of its raw value.
                problems.append(f"{path}: object {index} ({kind}): its id is not the UUIDv5 of its properties")
        elif oid not in FIXED:
            try:
                version = uuid.UUID(oid.split("--", 1)[1]).version
            except (IndexError, ValueError):
                version = None
            if version != 4:
                problems.append(f"{path}: object {index} ({kind}): its id is not a UUIDv4")
    return problems, len(objects)


def main(paths):
    for kind, props, expected in VECTORS:
        if sco_id(kind, props) != expected:
            print(f"the vector {expected} does not recompute", file=sys.stderr)
            return 1
    if not paths:
        print("usage: check_stix_ids.py BUNDLE.json...", file=sys.stderr)
        return 2
    failed = False
    for path in paths:
        problems, count = check_bundle(path)
        for problem in problems:
            print(problem, file=sys.stderr)
        failed |= bool(problems)
        print(f"{path}: {count} objects, {len(problems)} problems")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
