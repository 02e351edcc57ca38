"""The contract's signature rules off chain: `recover_as_contract` accepts exactly what ECDSA.tryRecover does."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from consentledger.consent import (
    HIGHEST_S,
    SECP256K1_N,
    Consent,
    Eip712Domain,
    consent_id,
    consent_signer,
    consent_typed_data,
    recover_as_contract,
    revocation_signer,
    revocation_typed_data,
    sign_consent,
    sign_revocation,
)

DOMAIN = Eip712Domain("ConsentLedger", "1", 1337, "0x" + "ab" * 20)
SUBJECT = Account.from_key(b"\x01" * 32)
OTHER = Account.from_key(b"\x02" * 32)


def _consent() -> Consent:
    return Consent(subject=SUBJECT.address, grantee=OTHER.address, category=1, purpose=1, valid_until=2**39, nonce=7)


def malleated(signature: bytes) -> bytes:
    """Return the other valid-for-ecrecover form of `signature`: s -> n - s, v flipped (EIP-2 forbids it)."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])


def revocation() -> tuple[bytes, bytes]:
    cid = consent_id(_consent(), DOMAIN)
    return cid, sign_revocation(cid, SUBJECT.key, DOMAIN)


def test_a_subjects_low_s_revocation_is_accepted() -> None:
    """The subject's own signature (eth_account makes low s, v 27/28) recovers to the subject."""
    cid, signature = revocation()

    check = revocation_signer(cid, signature, DOMAIN)

    assert check.signer == SUBJECT.address and check.refusal(SUBJECT.address) is None


def test_a_malleated_high_s_revocation_is_refused_although_eth_account_recovers_it() -> None:
    """s above n/2 (the same signature malleated) is refused, as OpenZeppelin's ECDSA refuses it."""
    cid, signature = revocation()
    high = malleated(signature)
    assert int.from_bytes(high[32:64], "big") > HIGHEST_S

    check = revocation_signer(cid, high, DOMAIN)

    assert check.signer is None
    assert check.refusal(SUBJECT.address) == "its s is in the upper half of the curve order (a malleable signature)"


@pytest.mark.parametrize("v", [0, 1, 26, 29, 255])
def test_a_v_other_than_27_or_28_is_refused(v: int) -> None:
    """v of 0/1 (which eth_account would take) or anything else but 27/28 recovers no signer."""
    cid, signature = revocation()

    check = revocation_signer(cid, signature[:64] + bytes([v]), DOMAIN)

    assert (check.signer, check.problem) == (None, f"its v is {v}, not 27 or 28")


@pytest.mark.parametrize("length", [0, 64, 66, 130])
def test_a_signature_not_65_bytes_long_is_refused(length: int) -> None:
    """Compact (64-byte) and padded signatures are refused, as the contract's tryRecover refuses them."""
    cid, signature = revocation()
    sized = (signature * 3)[:length]

    check = revocation_signer(cid, sized, DOMAIN)

    assert (check.signer, check.problem) == (None, f"the signature is {length} bytes, not 65")


def test_a_revocation_signed_by_another_key_names_its_signer() -> None:
    """A well-formed signature by someone else recovers to them, and the refusal says whose it is."""
    cid = consent_id(_consent(), DOMAIN)
    signature = sign_revocation(cid, OTHER.key, DOMAIN)

    check = revocation_signer(cid, signature, DOMAIN)

    assert check.signer == OTHER.address
    assert check.refusal(SUBJECT.address) == f"it is signed by {OTHER.address}, not by {SUBJECT.address}"


@pytest.mark.parametrize("r, s", [(0, 1), (1, 0), (SECP256K1_N, 1)])
def test_r_or_s_out_of_range_recovers_no_signer(r: int, s: int) -> None:
    """r or s of zero, or r not below n, is what ecrecover answers with the zero address."""
    check = recover_as_contract(b"\x11" * 32, r.to_bytes(32, "big") + s.to_bytes(32, "big") + b"\x1b")

    assert check.signer is None and check.problem is not None


def test_a_consent_signature_is_checked_over_the_consent_id() -> None:
    """`consent_signer` recovers the subject from a consent signature, not from a revocation of it."""
    consent = _consent()
    cid = consent_id(consent, DOMAIN)

    assert consent_signer(consent, sign_consent(consent, SUBJECT.key, DOMAIN), DOMAIN).signer == SUBJECT.address
    assert consent_signer(consent, sign_revocation(cid, SUBJECT.key, DOMAIN), DOMAIN).signer != SUBJECT.address


def test_the_consent_typed_data_is_json_with_64_bit_values_as_strings_and_signs_as_the_contract_expects() -> None:
    """A wallet gets JSON (record hex, 64-bit values as strings); eth_signTypedData_v4 over it signs the consent."""
    consent = Consent(subject=SUBJECT.address, grantee=OTHER.address, category=1, purpose=1, valid_until=2**39,
                      max_uses=3, record=b"\x5a" * 32, nonce=2**64 - 1)
    sent = json.loads(json.dumps(consent_typed_data(consent, DOMAIN)))

    message = sent["message"]
    assert (message["nonce"], message["validUntil"], message["maxUses"]) == (str(2**64 - 1), str(2**39), "3")
    assert message["record"] == "0x" + "5a" * 32 and sent["domain"]["chainId"] == 1337
    signature = bytes(Account.sign_typed_data(SUBJECT.key, full_message=sent).signature)
    assert signature == sign_consent(consent, SUBJECT.key, DOMAIN)
    assert consent_signer(consent, signature, DOMAIN).signer == SUBJECT.address


def test_the_revocation_typed_data_is_json_and_signs_the_revocation_of_the_consent_id() -> None:
    """`revocation_typed_data` carries the id as 0x hex; signing it as a wallet does is the contract's revocation."""
    cid = consent_id(_consent(), DOMAIN)
    sent = json.loads(json.dumps(revocation_typed_data(cid, DOMAIN)))

    assert sent["primaryType"] == "Revocation" and sent["message"] == {"consent": "0x" + cid.hex()}
    signature = bytes(Account.sign_typed_data(SUBJECT.key, full_message=sent).signature)
    assert revocation_signer(cid, signature, DOMAIN).signer == SUBJECT.address


def test_consent_json_carries_the_nonce_as_a_string_and_reads_back_either_form() -> None:
    """`to_json` writes the uint64 nonce as a decimal string; `from_json` reads it, and an older file's number."""
    consent = Consent(subject=SUBJECT.address, grantee=OTHER.address, category=1, purpose=1, valid_until=2**39,
                      nonce=2**64 - 1)
    written = consent.to_json()

    assert written["nonce"] == str(2**64 - 1)
    assert Consent.from_json(json.loads(json.dumps(written))) == consent
    assert Consent.from_json({**written, "nonce": 2**64 - 1}) == consent
