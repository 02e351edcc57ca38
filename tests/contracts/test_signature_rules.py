"""The gateway's off-chain signature check agrees with the contract on every kind of bad signature."""

from __future__ import annotations

import pytest

from consentledger.consent import SECP256K1_N, consent_id, revocation_signer, sign_revocation
from consentledger.errors import ContractRevertError

from .world import CONTACT_TRACE, EPIDEMIC, Net


def _variants(signature: bytes, other: bytes) -> dict[str, bytes]:
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return {
        "valid": signature,
        "high s": r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v]),
        "v as 0/1": signature[:64] + bytes([v - 27]),
        "v 29": signature[:64] + b"\x1d",
        "64 bytes": signature[:64],
        "66 bytes": signature + b"\x00",
        "zero r": b"\x00" * 32 + signature[32:],
        "another signer": other,
    }


@pytest.mark.parametrize("variant", ["valid", "high s", "v as 0/1", "v 29", "64 bytes", "66 bytes", "zero r",
                                     "another signer"])
def test_off_chain_check_accepts_exactly_what_revoke_by_signature_accepts(net: Net, variant: str) -> None:
    """For each variant, `revocation_signer(...).refusal(subject)` is None iff the contract's call would succeed."""
    consent = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC)
    net.grant(consent)
    domain = net.ledger.domain()
    cid = consent_id(consent, domain)
    signature = sign_revocation(cid, net.key_of(net.alice).key, domain)
    other = sign_revocation(cid, net.key_of(net.bob).key, domain)
    candidate = _variants(signature, other)[variant]

    refusal = revocation_signer(cid, candidate, domain).refusal(consent.subject)
    try:
        net.ledger.revoke_consent_by_signature(net.admin2, consent, candidate)
    except ContractRevertError as exc:
        assert exc.rule == "ConsentRegistryInvalidSignature"
        assert refusal is not None, f"the contract refused {variant} but the gateway would relay it"
    else:
        assert refusal is None, f"the contract took {variant} but the gateway refuses it: {refusal}"
    assert (refusal is None) == (variant == "valid")
