"""Offline receipts of accesses: build one from a node, verify one with no node.

A receipt (JSON, `format: consentledger-receipt/1`) of access `seq` to `record` holds:
`chain_id`, `ledger` (the AccessLedger address), `record`, `seq`, `previous` (the record's head
before access `seq`), `entries` (access `seq` and every later access to the record in the same
block: seq, requester, actor, purpose, consent, identified, timestamp), `head` (the record's head
after that block), `block_number`, `block_hash`, `header` (the block header's RLP),
`storage_slot` (informative: keccak256(record . uint256(7)), `_heads[record]`), and
`account_proof` / `storage_proof` (the RLP trie nodes of `eth_getProof` at that block).

Verification (`verify.verify_receipt`), with a trusted block hash or state root:
1. keccak256(header) is `block_hash`, equal to the trusted hash; the header's number is
   `block_number`; its state root (field 3) equals the trusted state root if given.
2. The account proof, walked from the state root along keccak256(ledger), yields the RLP account
   [nonce, balance, storageRoot, codeHash].
3. The storage proof, walked from storageRoot along keccak256(keccak256(record . uint256(7))),
   yields RLP(head) (leading zeros stripped), equal to `head`.
4. The entries have seqs `seq`, `seq`+1, ..., each the header's timestamp, and
   h = previous; h = keccak256(abi.encode(h, seq, requester, actor, purpose, consent, identified,
   timestamp)) for each entry ends at `head`.
Trie walking: each node is reached by its parent's reference, a keccak256 of the node's RLP or,
when that RLP is under 32 bytes, the node inline; a branch has 17 items (16 children and a value),
an extension or leaf 2 (a hex-prefix path, whose first nibble's bit 1 marks a leaf and bit 0 an
odd length, then the child or the value).

On Besu QBFT a block's hash leaves out its round and commit seals: `header` is then the on-chain
form and `sealed_header` the header as the node reports it, whose seals `verify.verify_sealed_receipt`
checks against a trusted validator set instead of a trusted hash (`qbft.py`).
"""
