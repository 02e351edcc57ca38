"""AccessLedger.requestAccessBatch: each item judged by requestAccess's rules; accepted chained, refused recorded."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.logs import DISCARD

from consentledger.chain.batch import MAX_BATCH, AccessRequest, batch_call, batch_gas_limit, batch_outcomes
from consentledger.chain.history import access_entries, check_record_chain
from consentledger.chain.ledger import entry_from_event
from consentledger.chain.reverts import revert_data
from consentledger.consent import Consent, consent_id
from consentledger.errors import ContractRevertError
from consentledger.types import AccessEntry, AccessRefusal, ActorId, ConsentStatus, MemberStatus, Role, TombstoneReason

from .world import (
    CONTACT_TRACE,
    DISTRICT_STATS,
    EPIDEMIC,
    LAB_RESULT,
    RESEARCH,
    Net,
    commitment_of,
    hex32,
    record_id,
    rule_args,
)

CLERK = ActorId(keccak(b"a clerk of the transport bureau"))
UNKNOWN = record_id("never registered")


def outcome_rules(outcomes: list[AccessEntry | AccessRefusal]) -> list[str | int]:
    """Return each outcome as its seq (accepted) or its rule's name (refused)."""
    return [o.seq if isinstance(o, AccessEntry) else o.rule for o in outcomes]


def refusal_args(refusal: AccessRefusal) -> tuple[Any, ...]:
    """Return a refusal's rule arguments with addresses checksummed, as world.rule_args does for reverts."""
    return rule_args(refusal.error())


def send_with_gas(net: Net, account: LocalAccount, call: Any, gas: int) -> Any:
    """Sign and send `call` from `account` with exactly `gas`, no estimate; return the mined receipt."""
    tx = call.build_transaction({
        "from": account.address, "gas": gas, "gasPrice": net.w3.eth.gas_price, "chainId": net.w3.eth.chain_id,
        "nonce": net.w3.eth.get_transaction_count(account.address),
    })
    signed = account.sign_transaction(tx)
    return net.w3.eth.wait_for_transaction_receipt(net.w3.eth.send_raw_transaction(signed.raw_transaction))


def cohort_of_lab_results(net: Net, name: str = "cohort") -> bytes:
    """Register a derived record over alice's and bob's lab results; return its id."""
    return net.register(name, None, LAB_RESULT, derived_from=[net.records.lab, net.records.lab_bob])


def cohort_consents(net: Net, cohort: bytes, max_uses: int = 1) -> list[Consent]:
    """Return alice's and bob's granted consents to transport for the cohort (research)."""
    consents = [
        net.consent(subject, net.transport, LAB_RESULT, RESEARCH, record=cohort, max_uses=max_uses)
        for subject in (net.alice, net.bob)
    ]
    for consent in consents:
        net.grant(consent)
    return consents


# ---------------------------------------------------------------------- per-item outcomes


def test_a_batch_records_good_items_and_refuses_each_bad_one_with_its_rule(net: Net) -> None:
    """Each refused item names the rule requestAccess would have reverted with; the others are chained."""
    expired = net.records.contact
    net.travel_to(net.ledger.record(expired).retain_until + 1)  # past contact-trace retention from here
    contact = net.register("fresh contact", net.alice, CONTACT_TRACE)
    tombstoned = net.register("erased contact", net.alice, CONTACT_TRACE)
    net.ledger.tombstone(net.health, tombstoned, TombstoneReason.ERASURE)
    lab = net.records.lab
    one_time = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC)
    for_lab = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=lab, max_uses=5)
    revoked = net.consent(net.bob, net.transport, LAB_RESULT, EPIDEMIC, record=net.records.lab_bob, max_uses=5)
    used_up = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC, record=contact)
    ids = {c: net.grant(c) for c in (one_time, for_lab, revoked, used_up)}
    net.ledger.revoke_consent(net.bob, revoked)
    net.access(net.transport, contact, EPIDEMIC, [used_up])

    items = [
        AccessRequest(contact, EPIDEMIC, (one_time,), CLERK),
        AccessRequest(UNKNOWN, EPIDEMIC, (for_lab,)),
        AccessRequest(lab, RESEARCH, (for_lab,)),  # the consent is for epidemic control
        AccessRequest(net.records.lab_bob, EPIDEMIC, (revoked,)),
        AccessRequest(contact, EPIDEMIC, (used_up,)),
        AccessRequest(contact, EPIDEMIC, (one_time,)),  # ONE_TIME: its single use went to item 0
        AccessRequest(tombstoned, EPIDEMIC, (one_time,)),
        AccessRequest(expired, EPIDEMIC, (one_time,)),
        AccessRequest(lab, EPIDEMIC, (for_lab,), CLERK),
        AccessRequest(net.records.stats, RESEARCH),
    ]
    outcomes = net.ledger.request_access_batch(net.transport, items)

    assert outcome_rules(outcomes) == [
        2, "RecordRegistryUnknownRecord", "ConsentRegistryWrongPurpose", "ConsentRegistryConsentRevoked",
        "ConsentRegistryConsentExhausted", "ConsentRegistryConsentExhausted", "RecordRegistryRecordTombstoned",
        "AccessLedgerRetentionExpired", 1, 1,
    ]
    args = [refusal_args(o) for o in outcomes if isinstance(o, AccessRefusal)]
    contact_info = net.ledger.record(expired)
    assert args == [
        (hex32(UNKNOWN),),
        (hex32(ids[for_lab]), EPIDEMIC),
        (hex32(ids[revoked]),),
        (hex32(ids[used_up]), 1, 1),
        (hex32(ids[one_time]), 1, 1),
        (hex32(tombstoned), int(TombstoneReason.ERASURE)),
        (hex32(expired), contact_info.retain_until),
    ]
    assert all(o.requester == net.transport.address for o in outcomes)
    assert [o.purpose for o in outcomes] == [i.purpose for i in items]
    assert [o.actor for o in outcomes] == [i.actor for i in items]
    assert len({o.tx_hash for o in outcomes}) == 1
    # Refused items consumed nothing: the lab consent counts the one accepted access only.
    assert net.ledger.consent_state(ids[for_lab]) == (ConsentStatus.GRANTED, 1)
    assert net.ledger.consent_state(ids[one_time]) == (ConsentStatus.GRANTED, 1)
    assert net.ledger.consent_state(ids[used_up]) == (ConsentStatus.GRANTED, 1)
    assert net.ledger.record(contact).accesses == 2
    for record in (contact, lab, net.records.stats):
        assert check_record_chain(net.ledger, record).ok


def test_each_refusal_is_the_error_a_single_request_raises(net: Net) -> None:
    """AccessRefusal.error() equals the ContractRevertError of requestAccess on the same state."""
    lab = net.records.lab
    consent = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=lab)
    net.grant(consent)
    net.access(net.transport, lab, EPIDEMIC, [consent])

    [refusal] = net.ledger.request_access_batch(net.transport, [AccessRequest(lab, EPIDEMIC, (consent,))])

    assert isinstance(refusal, AccessRefusal)
    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, lab, EPIDEMIC, [consent])
    assert (refusal.error().rule, refusal.error().rule_args) == (e.value.rule, e.value.rule_args)


def test_the_events_answer_the_items_one_each_in_item_order(net: Net) -> None:
    """Exactly one AccessRecorded or AccessRefused per item, in item order; `reason` is the full error."""
    consent = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=net.records.lab, max_uses=3)
    cid = net.grant(consent)
    items = [
        AccessRequest(net.records.lab, EPIDEMIC, (consent,)),
        AccessRequest(UNKNOWN, RESEARCH, (), CLERK),
        AccessRequest(net.records.lab, EPIDEMIC, (consent,)),
    ]
    call = batch_call(net.ledger, items)
    assert call.call({"from": net.transport.address}) == [1, 0, 2]
    receipt = net.transport.transact(call)

    recorded = net.ledger.access.events.AccessRecorded()
    refused = net.ledger.access.events.AccessRefused()
    logs = [log for log in receipt["logs"] if log["address"] == net.ledger.access.address]
    assert len(logs) == 3
    first, middle, last = (
        dict(event.process_log(log)["args"]) for event, log in zip((recorded, refused, recorded), logs, strict=True)
    )
    assert (first["seq"], first["consent"], last["seq"]) == (1, cid, 2)
    selector = keccak(text="RecordRegistryUnknownRecord(bytes32)")[:4]
    assert middle == {
        "record": UNKNOWN, "requester": net.transport.address, "purpose": RESEARCH, "actor": CLERK,
        "rule": selector, "reason": selector + UNKNOWN,
    }


def test_two_items_of_one_record_get_consecutive_seqs_and_the_chain_stays_whole(net: Net) -> None:
    """Items see the effects of the items before them; the record's hash chain recomputes from its events."""
    lab = net.records.lab
    consent = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=lab, max_uses=4)
    net.grant(consent)
    net.access(net.transport, lab, EPIDEMIC, [consent])

    outcomes = net.ledger.request_access_batch(net.transport, [
        AccessRequest(lab, EPIDEMIC, (consent,), CLERK),
        AccessRequest(lab, RESEARCH, (consent,)),
        AccessRequest(lab, EPIDEMIC, (consent,)),
    ])

    assert outcome_rules(outcomes) == [2, "ConsentRegistryWrongPurpose", 3]
    check = check_record_chain(net.ledger, lab)
    assert check.ok, check.problems
    assert [e.seq for e in check.entries] == [1, 2, 3]
    assert list(check.entries[1:]) == [o for o in outcomes if isinstance(o, AccessEntry)]
    assert net.ledger.head(lab) == outcomes[2].head  # type: ignore[union-attr]


def test_a_refused_derived_item_gives_back_the_consent_uses_it_took(net: Net) -> None:
    """Alice's consent is used before bob's is found missing: the refusal undoes her use too."""
    cohort = cohort_of_lab_results(net)
    alice, bob = cohort_consents(net, cohort)
    alice_id = consent_id(alice, net.ledger.domain())

    [refusal] = net.ledger.request_access_batch(net.transport, [AccessRequest(cohort, RESEARCH, (alice,))])

    assert isinstance(refusal, AccessRefusal)
    assert refusal.rule == "AccessLedgerMissingSourceConsent"
    assert refusal_args(refusal) == (hex32(cohort), hex32(net.records.lab_bob), net.bob.address)
    assert net.ledger.consent_state(alice_id) == (ConsentStatus.GRANTED, 0)
    assert net.ledger.record(cohort).accesses == 0


def test_derived_records_and_aggregates_are_judged_like_single_accesses(net: Net) -> None:
    """A derived record with both source subjects' consents and an aggregate without consent are chained."""
    net.attest(net.records.lab, net.records.lab_bob)
    aggregate = record_id("by district")
    net.ledger.register_aggregate(
        net.health, aggregate, DISTRICT_STATS, commitment_of("by district"), [net.records.lab, net.records.lab_bob]
    )
    cohort = cohort_of_lab_results(net)
    consents = tuple(cohort_consents(net, cohort, max_uses=2))
    ids = [consent_id(c, net.ledger.domain()) for c in consents]

    outcomes = net.ledger.request_access_batch(net.transport, [
        AccessRequest(cohort, RESEARCH, consents),
        AccessRequest(aggregate, RESEARCH),
        AccessRequest(aggregate, RESEARCH, consents[:1]),  # an aggregate takes no consent
        AccessRequest(cohort, RESEARCH, consents),
    ])

    assert outcome_rules(outcomes) == [1, 1, "AccessLedgerConsentCountMismatch", 2]
    assert outcomes[0].consent == keccak(b"".join(ids))  # type: ignore[union-attr]
    assert [net.ledger.consent_state(i) for i in ids] == [(ConsentStatus.GRANTED, 2)] * 2
    assert check_record_chain(net.ledger, cohort).ok and check_record_chain(net.ledger, aggregate).ok


# ---------------------------------------------------------------------- who may send a batch


@pytest.mark.parametrize("who", ["outsider", "auditor"])
def test_a_caller_that_is_no_active_requester_has_every_item_refused_on_the_ledger(net: Net, who: str) -> None:
    """The batch does not revert: each attempt is recorded as refused by the membership rule, nothing changes."""
    caller = getattr(net, who)
    consent = net.consent(net.alice, caller, LAB_RESULT, EPIDEMIC, record=net.records.lab)
    cid = net.grant(consent)

    outcomes = net.ledger.request_access_batch(caller, [
        AccessRequest(net.records.lab, EPIDEMIC, (consent,)),
        AccessRequest(net.records.stats, RESEARCH),
        AccessRequest(UNKNOWN, RESEARCH),
    ])

    rule, args = (
        ("ConsortiumMemberNotActive", (caller.address, int(MemberStatus.NONE))) if who == "outsider"
        else ("ConsortiumMissingRole", (caller.address, int(Role.REQUESTER)))
    )
    assert [(o.rule, refusal_args(o)) for o in outcomes] == [  # type: ignore[union-attr]
        (rule, args), (rule, args), ("RecordRegistryUnknownRecord", (hex32(UNKNOWN),)),
    ]
    assert all(o.requester == caller.address for o in outcomes)
    assert net.ledger.consent_state(cid) == (ConsentStatus.GRANTED, 0)
    assert net.ledger.record(net.records.stats).accesses == 0


def test_the_item_entry_is_for_the_ledger_itself_only(net: Net) -> None:
    """Nobody can call recordBatchItem to act as another requester (or pass a made-up policy answer)."""
    item = AccessRequest(net.records.stats, RESEARCH).as_tuple()
    call = net.ledger.access.functions.recordBatchItem(net.transport.address, 0, item)

    with pytest.raises(ContractRevertError) as e:
        net.police.transact(call)
    assert (e.value.rule, rule_args(e.value)) == ("AccessLedgerSelfCallOnly", (net.police.address,))


# ---------------------------------------------------------------------- malformed batches


def test_an_empty_batch_reverts(net: Net) -> None:
    """A batch must hold at least one request."""
    with pytest.raises(ContractRevertError) as e:
        net.ledger.request_access_batch(net.transport, [])
    assert e.value.rule == "AccessLedgerBatchEmpty"


def test_a_batch_over_max_batch_reverts_and_max_batch_is_accepted(net: Net) -> None:
    """MAX_BATCH (256) requests are one batch; one more is refused as a whole."""
    assert net.ledger.access.functions.MAX_BATCH().call() == MAX_BATCH == 256
    stats = AccessRequest(net.records.stats, RESEARCH)

    with pytest.raises(ContractRevertError) as e:
        net.ledger.request_access_batch(net.transport, [stats] * (MAX_BATCH + 1))
    assert (e.value.rule, e.value.rule_args) == ("AccessLedgerBatchTooLarge", (MAX_BATCH + 1, MAX_BATCH))
    assert net.ledger.record(net.records.stats).accesses == 0

    outcomes = net.ledger.request_access_batch(net.transport, [stats] * MAX_BATCH)
    assert outcome_rules(outcomes) == list(range(1, MAX_BATCH + 1))
    assert check_record_chain(net.ledger, net.records.stats).ok


def test_running_out_of_gas_inside_a_later_item_reverts_the_whole_batch(net: Net) -> None:
    """No refusal is recorded for an item that failed for want of gas: BatchItemFailed(index), nothing kept."""
    lab = net.records.lab
    for_lab = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=lab, max_uses=2)
    lab_id = net.grant(for_lab)
    cohort = cohort_of_lab_results(net)
    consents = tuple(cohort_consents(net, cohort))
    items = [AccessRequest(lab, EPIDEMIC, (for_lab,)), AccessRequest(cohort, RESEARCH, consents)]
    call = batch_call(net.ledger, items)
    needed = call.estimate_gas({"from": net.transport.address})

    # Find a limit at which the first item completes and the second (the costlier) runs dry inside its call.
    failing = None
    for gas in range(needed - 2_000, needed // 2, -2_000):
        try:
            call.call({"from": net.transport.address, "gas": gas})
        except Exception as exc:  # py-evm reports eth_call reverts as its own exception type
            error = net.ledger.decoder.decode(revert_data(exc))
            if (error.rule, error.rule_args) == ("AccessLedgerBatchItemFailed", (1,)):
                failing = gas
                break
    assert failing is not None, "no gas limit made the second item run out of gas"

    receipt = send_with_gas(net, net.cast.transport, call, failing)

    assert receipt["status"] == 0
    assert receipt["logs"] == []
    assert net.ledger.consent_state(lab_id) == (ConsentStatus.GRANTED, 0)
    assert net.ledger.record(lab).accesses == 0
    assert net.ledger.record(cohort).accesses == 0


# ---------------------------------------------------------------------- the Python binding


def test_request_access_batch_answers_per_item_what_the_chain_holds(net: Net) -> None:
    """Entries equal the chain's AccessRecorded entries; refusals carry the block and transaction."""
    lab = net.records.lab
    consent = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=lab, max_uses=2)
    net.grant(consent)
    block = net.w3.eth.block_number + 1

    outcomes = net.ledger.request_access_batch(net.transport, [
        AccessRequest(lab, EPIDEMIC, (consent,), CLERK),
        AccessRequest(UNKNOWN, EPIDEMIC, (consent,), CLERK),
        AccessRequest(net.records.stats, EPIDEMIC),
    ])

    entries = [o for o in outcomes if isinstance(o, AccessEntry)]
    assert entries == [e for e in access_entries(net.ledger) if e.block_number == block]
    refusal = outcomes[1]
    assert refusal == AccessRefusal(
        record=UNKNOWN, requester=net.transport.address, purpose=EPIDEMIC, actor=CLERK,  # type: ignore[arg-type]
        rule="RecordRegistryUnknownRecord", rule_args=(hex32(UNKNOWN),), block_number=block,
        tx_hash=entries[0].tx_hash,
    )


def test_batch_outcomes_refuses_a_receipt_of_another_size(net: Net) -> None:
    """A receipt whose outcomes do not number the items is not that batch's receipt."""
    call = batch_call(net.ledger, [AccessRequest(net.records.stats, RESEARCH)] * 2)
    receipt = net.transport.transact(call)

    assert len(batch_outcomes(net.ledger, receipt, 2)) == 2
    with pytest.raises(Exception, match="2 access outcomes for a batch of 3"):
        batch_outcomes(net.ledger, receipt, 3)


# ---------------------------------------------------------------------- the gas bound


def test_real_batches_fit_in_the_gas_bound(net: Net) -> None:
    """Mixed kinds, first accesses, derived records with several consents, refusals, near MAX_BATCH: each
    batch sent with exactly batch_gas_limit's gas succeeds with every item judged by a rule."""
    net.attest(net.records.lab, net.records.lab_bob)
    aggregate = record_id("by district")
    net.ledger.register_aggregate(
        net.health, aggregate, DISTRICT_STATS, commitment_of("by district"), [net.records.lab, net.records.lab_bob]
    )
    cohort = cohort_of_lab_results(net)
    cohort_terms = tuple(cohort_consents(net, cohort, max_uses=100))
    fresh = [net.register(f"fresh lab {n}", net.alice, LAB_RESULT) for n in range(24)]
    fresh_terms = []
    for record in fresh:
        consent = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=record)
        net.grant(consent)
        fresh_terms.append(consent)
    lab = net.records.lab
    lab_terms = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=lab, max_uses=200)
    net.grant(lab_terms)

    first_accesses = [AccessRequest(r, EPIDEMIC, (c,), CLERK) for r, c in zip(fresh, fresh_terms, strict=True)]
    mixed = (
        first_accesses[:12]
        + [AccessRequest(cohort, RESEARCH, cohort_terms, CLERK)] * 20
        + [AccessRequest(aggregate, RESEARCH)] * 20
        + [AccessRequest(lab, EPIDEMIC, (lab_terms,), CLERK)] * 140
        + [AccessRequest(net.records.stats, RESEARCH)] * 40
        + [AccessRequest(UNKNOWN, RESEARCH, cohort_terms)] * 4
        + first_accesses[:6]  # their consents are used up by now
        + first_accesses[12:]
    )
    sources = {cohort: 2, aggregate: 2}
    assert len(mixed) == 254
    refused = {}
    for batch in (first_accesses[12:18], mixed):
        counts = [sources.get(item.record, 0) for item in batch]
        gas = batch_gas_limit([len(item.consents) for item in batch], counts)
        receipt = send_with_gas(net, net.cast.transport, batch_call(net.ledger, batch), gas)
        assert receipt["status"] == 1
        assert receipt["gasUsed"] < gas
        outcomes = batch_outcomes(net.ledger, receipt, len(batch))
        refused[len(batch)] = sorted({o.rule for o in outcomes if isinstance(o, AccessRefusal)})
        assert sum(isinstance(o, AccessRefusal) for o in outcomes) == (16 if batch is mixed else 0)
    assert refused == {6: [], 254: ["ConsentRegistryConsentExhausted", "RecordRegistryUnknownRecord"]}


def test_the_fast_log_decoding_reads_what_web3_decodes(net: Net) -> None:
    """batch_outcomes and Ledger.access_entries read the words directly; web3's ABI decoding agrees field by field."""
    lab = net.records.lab
    for_lab = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=lab, max_uses=5, identified=True)
    net.grant(for_lab)
    items = [AccessRequest(lab, EPIDEMIC, (for_lab,), CLERK), AccessRequest(UNKNOWN, EPIDEMIC, (for_lab,), CLERK)]
    receipt = net.transport.transact(batch_call(net.ledger, items))

    entry, refusal = batch_outcomes(net.ledger, receipt, 2)

    (recorded,) = net.ledger.access.events.AccessRecorded().process_receipt(receipt, errors=DISCARD)
    (refused,) = net.ledger.access.events.AccessRefused().process_receipt(receipt, errors=DISCARD)
    assert entry == entry_from_event(recorded) and entry.identified and entry.actor == CLERK
    assert isinstance(refusal, AccessRefusal)
    assert (refusal.record, refusal.requester, refusal.purpose, refusal.actor) == (
        bytes(refused["args"]["record"]), refused["args"]["requester"], refused["args"]["purpose"],
        bytes(refused["args"]["actor"]))
    assert refusal.error().rule == net.ledger.decoder.decode(bytes(refused["args"]["reason"])).rule
    block = receipt["blockNumber"]
    assert net.ledger.access_entries(block, block, records=[lab], seqs=[entry.seq]) == [entry]
    assert net.ledger.access_entries(block, block, records=[UNKNOWN]) == []
