"""Micro benchmarks of the crypto recipes; prints figures, asserts nothing.

Run: .venv/bin/python bench/crypto.py
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import cryptography

from consentledger.crypto.commitment import canonical_json, new_salt
from consentledger.crypto.disclosure import Withholding, disclose, pseudonym_key_for, record_commitment
from consentledger.crypto.keyx import access_context, new_x25519, unwrap, wrap_for
from consentledger.crypto.vault import new_dek, open_sealed, record_aad, seal

MIB = 1 << 20
GIB = 1 << 30
MIN_SECONDS = 1.0


def rate(operation: Callable[[], object], min_seconds: float = MIN_SECONDS) -> float:
    """Return how many times per second `operation` runs, timed over at least `min_seconds` after a warm-up."""
    for _ in range(3):
        operation()
    count, start = 0, time.perf_counter()
    batch = 1
    while (elapsed := time.perf_counter() - start) < min_seconds:
        for _ in range(batch):
            operation()
        count += batch
        batch = min(batch * 2, 4096)
    return count / elapsed


def main() -> None:
    """Print throughput and rate figures for seal/open, wrap_for/unwrap and commitments."""
    print(f"python {platform.python_version()}, cryptography {cryptography.__version__}, {platform.machine()}")

    dek, aad = new_dek(), record_aad(os.urandom(32), 7)
    plaintext = os.urandom(MIB)
    sealed = seal(dek, plaintext, aad)
    seal_rate = rate(lambda: seal(dek, plaintext, aad))
    open_rate = rate(lambda: open_sealed(dek, sealed, aad))
    both_rate = rate(lambda: open_sealed(dek, seal(dek, plaintext, aad), aad))
    print(f"AES-256-GCM seal, 1 MiB:        {seal_rate * MIB / GIB:6.2f} GiB/s")
    print(f"AES-256-GCM open, 1 MiB:        {open_rate * MIB / GIB:6.2f} GiB/s")
    print(f"AES-256-GCM seal+open, 1 MiB:   {both_rate * MIB / GIB:6.2f} GiB/s ({both_rate:,.0f} round trips/s)")

    small = os.urandom(1024)
    small_rate = rate(lambda: open_sealed(dek, seal(dek, small, aad), aad))
    print(f"AES-256-GCM seal+open, 1 KiB:   {small_rate:,.0f} round trips/s")

    private, public = new_x25519()
    context = access_context(os.urandom(32), 1, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    wrapped = wrap_for(public, dek, context)
    print(f"wrap_for:                       {rate(lambda: wrap_for(public, dek, context)):,.0f} /s")
    print(f"unwrap (raw private bytes):     {rate(lambda: unwrap(private, wrapped, context)):,.0f} /s")
    round_trip = rate(lambda: unwrap(private, wrap_for(public, dek, context), context))
    print(f"wrap_for + unwrap:              {round_trip:,.0f} /s")

    # 22 fields of 32 characters: a 1,024-byte canonical payload.
    payload = {f"field_{i:02d}": "x" * 32 + ("x" * (i < 11)) for i in range(22)}
    canonical = canonical_json(payload)
    salt = new_salt()
    commit = rate(lambda: record_commitment(salt, payload))
    print(f"record_commitment:              {commit:,.0f} /s ({len(canonical)} B, {len(payload)} fields)")
    hidden = ("field_00", "field_01")
    key = pseudonym_key_for(os.urandom(32), "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    shown = disclose(salt, payload, hidden, withholding=Withholding.PSEUDONYMISE, pseudonym_key=key)
    expected = record_commitment(salt, payload)
    print(f"disclose (2 pseudonymised):     {rate(lambda: disclose(salt, payload, hidden, pseudonym_key=key)):,.0f} /s")
    print(f"Disclosure.verify:              {rate(lambda: shown.verify(expected)):,.0f} /s")


if __name__ == "__main__":
    main()
