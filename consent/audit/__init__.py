"""Audit: signed checkpoints, verification, exports, per-contact proofs and erasure for auditors."""
