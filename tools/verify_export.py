#!/usr/bin/env python3
"""Verify a consent-ledger export against its signed manifest, without the database.

Needs only Python 3.10+ and the `cryptography` package:

    python tools/verify_export.py consent.csv --public-key audit-public-key.pem

Checks: the manifest's Ed25519 signature (with the public key you obtained from the service's
/api/v1/audit/public-key/, or the key embedded in the manifest if you give none), the file's
SHA-256 and size, the signed checkpoint, every event's hash recomputed from its content and
prev_hash, the links between consecutive events, the counts and sequence range, the texts'
hashes and that every event's text hash resolves to a text version. Exit 0 if everything holds,
1 otherwise, with one line per problem.
"""

import argparse
import base64
import csv
import hashlib
import json
import sys
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS_HASH = "0" * 64
CHAINED_FIELDS = ("seq", "uuid", "occurred_at", "recorded_at", "kind", "subject", "topic", "channel", "source",
                  "actor", "text_version", "text_sha256", "evidence")
# Export column -> chained field name (the other columns are not covered by the hash).
COLUMN_TO_FIELD = {"sequence": "seq", "event_id": "uuid", "occurred_at": "occurred_at", "recorded_at": "recorded_at",
                   "kind": "kind", "subject": "subject", "topic": "topic", "channel": "channel", "source": "source",
                   "actor": "actor", "text_version": "text_version", "text_sha256": "text_sha256",
                   "evidence": "evidence"}
CHECKPOINT_FIELDS = ("type", "seq", "hash", "signed_at")
MAX_PROBLEMS = 50


def canonical_json(payload) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chain_hash(prev_hash: str, fields: dict) -> str:
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_json({name: fields[name] for name in CHAINED_FIELDS}))
    return digest.hexdigest()


def text_sha256(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode("utf-8")
        digest.update(f"{len(encoded)}:".encode())
        digest.update(encoded)
    return digest.hexdigest()


def unneutralise(cell: str) -> str:
    """Undo the CSV formula guard: one leading ' was added to any cell starting with = + - @ TAB CR or '."""
    return cell.removeprefix("'")


def signature_ok(key: Ed25519PublicKey, payload, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), canonical_json(payload))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


@dataclass
class Result:
    count: int = 0
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


def records_from_csv(path: str):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        header = [unneutralise(cell) for cell in header]
        for line, cells in enumerate(reader, start=2):
            if len(cells) != len(header):
                raise ValueError(f"line {line}: {len(cells)} cells, expected {len(header)}")
            record = {name: unneutralise(cell) for name, cell in zip(header, cells, strict=True)}
            record["sequence"] = int(record["sequence"])
            record["text_version"] = int(record["text_version"]) if record["text_version"] != "" else None
            record["evidence"] = json.loads(record["evidence"])
            yield record


def records_from_jsonl(path: str):
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def verify_export(path: str, manifest_path: str | None = None, public_key_pem: str | None = None) -> Result:
    """Check an export file against its manifest; the result lists every problem found (capped)."""
    result = Result()
    manifest_path = manifest_path or f"{path}.manifest.json"
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as exc:
        result.problem(f"cannot read the manifest {manifest_path}: {exc}")
        return result

    # 1. Who signed the manifest.
    try:
        if public_key_pem:
            key = load_public_key(public_key_pem)
        else:
            key = load_public_key(manifest.get("public_key", ""))
            result.warnings.append("no public key given: checked against the key inside the manifest, which "
                                   "proves integrity but not origin; pass --public-key to pin the service's key")
    except (ValueError, TypeError) as exc:
        result.problem(f"unusable public key: {exc}")
        return result
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    if not signature_ok(key, unsigned, manifest.get("signature", "")):
        result.problem("the manifest's signature does not verify with this public key")
    if manifest.get("key_id") not in (None, key_id(key)):
        result.problem("the manifest names a different signing key")

    # 2. The file is the one the manifest describes.
    digest, size = hashlib.sha256(), 0
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    except OSError as exc:
        result.problem(f"cannot read {path}: {exc}")
        return result
    if digest.hexdigest() != manifest.get("sha256"):
        result.problem("the file's SHA-256 differs from the manifest (the file was changed)")
    if size != manifest.get("bytes", size):
        result.problem(f"the file has {size} bytes, the manifest says {manifest.get('bytes')}")

    # 3. The signed checkpoint and the chain head.
    checkpoint = manifest.get("checkpoint")
    head = manifest.get("chain_head") or {}
    if checkpoint:
        payload = {name: checkpoint.get(name) for name in CHECKPOINT_FIELDS}
        if "actions" in checkpoint:  # checkpoints since the staff action log also sign that log's head
            payload["actions"] = checkpoint["actions"]
        if not signature_ok(key, payload, checkpoint.get("signature", "")):
            result.problem("the checkpoint's signature does not verify with this public key")
        if (head.get("seq"), head.get("hash")) != (checkpoint.get("seq"), checkpoint.get("hash")):
            result.problem("the chain head in the manifest is not the signed checkpoint")
    else:
        result.warnings.append("the manifest carries no signed checkpoint (the ledger did not verify at export time)")

    # 4. Texts: each version's hash recomputes.
    texts = {}
    for text in manifest.get("texts", []):
        # The welcome message counts only when a version has one (older versions hash three texts).
        welcome = [text["welcome_message"]] if text.get("welcome_message") else []
        sha = text_sha256(text.get("consent_text", ""), text.get("confirmation_message", ""), text.get("help_message", ""),
                          *welcome)
        if sha != text.get("sha256"):
            result.problem(f"text {text.get('topic')} v{text.get('version')}: its SHA-256 does not match its words")
        texts[(text.get("topic"), text.get("version"))] = text.get("sha256")

    # 5. Every event.
    fmt = manifest.get("file_format")
    reader = records_from_csv if fmt == "csv" else records_from_jsonl if fmt == "jsonl" else None
    if reader is None:
        result.problem(f"unknown file format {fmt!r} in the manifest")
        return result
    filtered = any((manifest.get("filters") or {}).values())
    prev_seq, prev_hash, first_seq, last_hash = None, None, None, None
    try:
        for record in reader(path):
            fields = {COLUMN_TO_FIELD[c]: record[c] for c in COLUMN_TO_FIELD}
            seq = fields["seq"]
            result.count += 1
            if first_seq is None:
                first_seq = seq
            if prev_seq is not None and seq <= prev_seq:
                result.problem(f"sequence {seq}: out of order after {prev_seq}")
            if seq == 1 and record["prev_hash"] != GENESIS_HASH:
                result.problem("sequence 1: prev_hash is not the genesis hash")
            if prev_seq is not None and seq == prev_seq + 1 and record["prev_hash"] != prev_hash:
                result.problem(f"sequence {seq}: prev_hash does not link to event {prev_seq}")
            if not filtered and prev_seq is not None and seq != prev_seq + 1:
                result.problem(f"sequence {prev_seq + 1}: missing from an unfiltered export")
            if chain_hash(record["prev_hash"], fields) != record["hash"]:
                result.problem(f"sequence {seq}: hash does not match the event's content")
            if fields["text_sha256"] and texts and texts.get((fields["topic"], fields["text_version"])) != fields["text_sha256"]:
                result.problem(f"sequence {seq}: text {fields['topic']} v{fields['text_version']} is not in the manifest's texts")
            prev_seq, prev_hash, last_hash = seq, record["hash"], record["hash"]
    except (ValueError, KeyError, TypeError) as exc:
        result.problem(f"the file cannot be read as {fmt}: {exc!r}")
        return result

    # 6. Counts and range.
    if result.count != manifest.get("count"):
        result.problem(f"the file has {result.count} events, the manifest says {manifest.get('count')}")
    if first_seq != manifest.get("first_seq") or prev_seq != manifest.get("last_seq"):
        result.problem(f"the file spans {first_seq}..{prev_seq}, the manifest says "
                       f"{manifest.get('first_seq')}..{manifest.get('last_seq')}")
    if not filtered:
        if result.count and first_seq != 1:
            result.problem("an unfiltered export must start at sequence 1")
        if (prev_seq or 0) != head.get("seq"):
            result.problem(f"the export ends at {prev_seq}, the chain head is {head.get('seq')}")
        elif result.count and last_hash != head.get("hash"):
            result.problem("the last event's hash is not the chain head's hash")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Verify a consent-ledger export against its signed manifest.")
    parser.add_argument("file", help="the exported .csv or .jsonl file")
    parser.add_argument("--manifest", help="the manifest (default: FILE.manifest.json)")
    parser.add_argument("--public-key", help="PEM file with the service's Ed25519 public key")
    args = parser.parse_args(argv)
    pem = None
    if args.public_key:
        with open(args.public_key, encoding="ascii") as handle:
            pem = handle.read()
    result = verify_export(args.file, args.manifest, pem)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.ok:
        print(f"OK: {result.count} events verified against the signed manifest.")
        return 0
    for problem in result.problems:
        print(f"FAIL: {problem}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
