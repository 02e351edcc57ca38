"""Turn raw revert data into our ContractRevertError naming the contract rule that fired."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from consentledger.errors import ContractRevertError
from consentledger.types import MemberStatus, Role, Sensitivity, TombstoneReason

_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)


@dataclass(frozen=True)
class _Layout:
    name: str
    types: list[str]
    names: tuple[str, ...]
    enums: tuple[type[IntEnum] | type[Role] | None, ...]


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])


# Arguments the contracts declare as enums (by the enum's name) or as role bits (uint8 by the argument's
# name), shown by name: `ConsortiumMissingRole(account=0x…, role=CUSTODIAN)`, not `(…, 2)`.
_ENUMS: dict[str, type[IntEnum]] = {"MemberStatus": MemberStatus, "TombstoneReason": TombstoneReason,
                                    "Sensitivity": Sensitivity}
_ROLE_ARGUMENTS = {"role", "roles"}


def _enum_of(item: dict[str, Any]) -> type[IntEnum] | type[Role] | None:
    internal = str(item.get("internalType", ""))
    if internal.startswith("enum "):
        return _ENUMS.get(internal.rsplit(".", 1)[-1])
    if item.get("type") == "uint8" and item.get("name") in _ROLE_ARGUMENTS:
        return Role
    return None


def _named(kind: type[IntEnum] | type[Role] | None, value: Any) -> Any:
    if kind is None or not isinstance(value, int):
        return value
    try:
        return kind(value)
    except ValueError:  # a value our enum does not know: keep the number
        return value


class RevertDecoder:
    """Decodes custom errors from the ABIs it was given (all contracts, so bubbled errors decode)."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, _Layout] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                inputs = item.get("inputs", [])
                types = [_abi_type(i) for i in inputs]
                signature = f"{item['name']}({','.join(types)})"
                names = tuple(str(i.get("name") or f"arg{n}") for n, i in enumerate(inputs))
                self._errors[function_signature_to_4byte_selector(signature)] = _Layout(
                    item["name"], types, names, tuple(_enum_of(i) for i in inputs)
                )

    def decode(self, data: bytes | str | None) -> ContractRevertError:
        """Return the error for revert `data` (hex or bytes); unknown data still gives an error."""
        raw = _as_bytes(data)
        selector, body = raw[:4], raw[4:]
        if selector in self._errors:
            layout = self._errors[selector]
            try:
                decoded = decode(layout.types, body)
                values = tuple(
                    to_checksum_address(v) if t == "address" else _named(kind, _plain(v))
                    for t, kind, v in zip(layout.types, layout.enums, decoded, strict=True)
                )
            except Exception:  # malformed payload: still name the rule
                return ContractRevertError(layout.name)
            return ContractRevertError(layout.name, values, arg_names=layout.names)
        if selector == _ERROR_STRING:
            (message,) = decode(["string"], body)
            return ContractRevertError("Error", (message,), detail=f"reverted: {message}")
        if selector == _PANIC:
            (code,) = decode(["uint256"], body)
            return ContractRevertError("Panic", (code,), detail=f"panic 0x{code:02x}")
        shown = "0x" + raw.hex() if raw else "no data"
        return ContractRevertError("UnknownRevert", (), detail=f"reverted without a known reason ({shown})")


def revert_data(exc: BaseException) -> bytes | None:
    """Return the revert data carried by a failed call's exception, or None if it is no revert.

    JSON-RPC nodes surface it as web3's ContractCustomError/ContractLogicError `.data`; the
    in-process eth-tester chain raises TransactionFailed carrying the raw bytes.
    """
    seen: BaseException | None = exc
    while seen is not None:
        data = getattr(seen, "data", None)
        if isinstance(data, dict):  # ganache's eth_estimateGas puts it under "result"
            data = data.get("data") or data.get("result")
        if isinstance(data, str) and data.startswith("0x"):
            return _as_bytes(data)
        if type(seen).__name__ in ("TransactionFailed", "Revert"):
            for arg in seen.args:
                raw = arg if isinstance(arg, bytes) else _bytes_literal(arg)
                if raw is not None:
                    return raw
        seen = seen.__cause__ or seen.__context__
    if type(exc).__name__ in ("ContractLogicError", "ContractCustomError", "TransactionFailed"):
        return b""
    return None


def _bytes_literal(arg: object) -> bytes | None:
    """eth-tester's eth_call reports revert data as the repr of a bytes object; read it back."""
    if not isinstance(arg, str):
        return None
    text = arg.removeprefix("execution reverted: ")
    if not text.startswith(("b'", 'b"')):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, bytes) else None


def _as_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    text = data[2:] if data.startswith("0x") else data
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value
