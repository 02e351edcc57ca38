"""Compiling Solidity sources: imports, cache, errors, the solcjs route, runnable bytecode."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from consentledger import paths
from consentledger.chain import compile as compile_mod
from consentledger.chain.compile import ContractArtifact, compile_contracts
from consentledger.errors import CompilationError

PRAGMA = "// SPDX-License-Identifier: Apache-2.0\npragma solidity ^0.8.20;\n"

I_GREETER = (
    PRAGMA
    + """
interface IGreeter {
    error GreeterEmptyName();
    event Greeted(address indexed by, string name);
}
"""
)

GREETER = (
    PRAGMA
    + """
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import "./interfaces/IGreeter.sol";
// import "./DoesNotExist.sol";  (commented out: must not be followed)

contract Greeter is IGreeter {
    function greet(string calldata name) external returns (string memory) {
        if (bytes(name).length == 0) revert GreeterEmptyName();
        emit Greeted(msg.sender, name);
        return string.concat("hello ", name);
    }

    function signer(bytes32 digest, bytes calldata signature) external pure returns (address) {
        return ECDSA.recover(digest, signature);
    }
}
"""
)


def write_project(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (paths relative to contracts/) under `root` and return the contracts dir."""
    contracts = root / "contracts"
    for rel, text in files.items():
        target = contracts / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return contracts


@pytest.fixture
def greeter_project(tmp_path: Path) -> Path:
    """A two-file project: Greeter imports its interface and OpenZeppelin's ECDSA."""
    return write_project(tmp_path, {"Greeter.sol": GREETER, "interfaces/IGreeter.sol": I_GREETER})


@pytest.fixture(scope="module")
def greeter_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ContractArtifact]:
    """The Greeter project compiled once for the tests that only read its artifacts."""
    root = tmp_path_factory.mktemp("greeter")
    contracts = write_project(root, {"Greeter.sol": GREETER, "interfaces/IGreeter.sol": I_GREETER})
    return compile_contracts(contracts, build_dir=root / "build")


@pytest.fixture
def count_invocations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record every real compiler run (one list entry per run)."""
    calls: list[int] = []
    real = compile_mod._invoke

    def counting(*args: Any) -> dict[str, Any]:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(compile_mod, "_invoke", counting)
    return calls


def cache_files(build: Path) -> list[Path]:
    return sorted(build.glob("artifacts-*.json"))


def test_compiles_project_with_relative_and_openzeppelin_imports(
    greeter_artifacts: dict[str, ContractArtifact],
) -> None:
    """A relative import and an @openzeppelin import both resolve and the contract compiles."""
    artifacts = greeter_artifacts
    greeter = artifacts["Greeter"]
    assert greeter.bytecode.startswith("0x") and len(greeter.bytecode) > 100
    assert greeter.deployed_bytecode.startswith("0x") and len(greeter.deployed_bytecode) > 100
    functions = {item["name"] for item in greeter.abi if item["type"] == "function"}
    assert functions == {"greet", "signer"}
    assert "ECDSA" not in artifacts  # library code from node_modules is not a project artifact


def test_interfaces_are_returned_with_their_errors_and_events(
    greeter_artifacts: dict[str, ContractArtifact],
) -> None:
    """An interface comes back with empty bytecode and an ABI carrying its errors and events."""
    interface = greeter_artifacts["IGreeter"]
    assert interface.bytecode == "0x"
    assert {(i["type"], i["name"]) for i in interface.abi} == {
        ("error", "GreeterEmptyName"),
        ("event", "Greeted"),
    }


def test_abi_hash_is_sha256_of_canonical_abi(
    greeter_artifacts: dict[str, ContractArtifact],
) -> None:
    """abi_hash is the sha256 of the ABI serialised with sorted keys and compact separators."""
    greeter = greeter_artifacts["Greeter"]
    canonical = json.dumps(greeter.abi, sort_keys=True, separators=(",", ":")).encode()
    assert greeter.abi_hash == hashlib.sha256(canonical).hexdigest()


def test_second_call_reads_cache_without_invoking_compiler(
    greeter_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unchanged sources are served from build/ without running the compiler."""
    build = greeter_project.parent / "build"
    first = compile_contracts(greeter_project, build_dir=build)
    assert len(cache_files(build)) == 1

    def no_compiler(*_: Any) -> dict[str, Any]:
        raise AssertionError("compiler must not run on a cache hit")

    monkeypatch.setattr(compile_mod, "_invoke", no_compiler)
    assert compile_contracts(greeter_project, build_dir=build) == first


def test_force_recompiles_despite_cache(
    greeter_project: Path, count_invocations: list[int]
) -> None:
    """force=True runs the compiler even when a cached result exists."""
    build = greeter_project.parent / "build"
    compile_contracts(greeter_project, build_dir=build)
    compile_contracts(greeter_project, build_dir=build, force=True)
    assert len(count_invocations) == 2


def test_editing_an_imported_source_changes_key_and_recompiles(
    greeter_project: Path, count_invocations: list[int]
) -> None:
    """Changing an imported file gives a new cache file and a fresh compile with the change."""
    build = greeter_project.parent / "build"
    compile_contracts(greeter_project, build_dir=build)
    (greeter_project / "interfaces/IGreeter.sol").write_text(
        I_GREETER.replace("}", "    error GreeterTooLong(uint256 length);\n}"), encoding="utf-8"
    )

    artifacts = compile_contracts(greeter_project, build_dir=build)

    assert len(count_invocations) == 2
    assert len(cache_files(build)) == 2
    assert any(i.get("name") == "GreeterTooLong" for i in artifacts["IGreeter"].abi)


def test_syntax_error_raises_compilation_error_with_compiler_text(tmp_path: Path) -> None:
    """A parse error surfaces as CompilationError carrying solc's formatted message."""
    contracts = write_project(tmp_path, {"Broken.sol": PRAGMA + "contract Broken { uint x }"})
    with pytest.raises(CompilationError, match=r"ParserError(.|\n)*Broken\.sol"):
        compile_contracts(contracts, build_dir=tmp_path / "build")
    assert not cache_files(tmp_path / "build")


def test_unresolvable_import_raises_compilation_error(tmp_path: Path) -> None:
    """An import of a file that exists nowhere is reported with its name."""
    contracts = write_project(
        tmp_path, {"A.sol": PRAGMA + 'import "./Missing.sol";\ncontract A {}'}
    )
    with pytest.raises(CompilationError, match=r"contracts/Missing\.sol"):
        compile_contracts(contracts, build_dir=tmp_path / "build")


def test_same_contract_name_in_two_files_raises(tmp_path: Path) -> None:
    """Two files defining the same contract name cannot both be returned by name."""
    twin = PRAGMA + "contract Twin { function f() external pure returns (uint256) { return 1; } }"
    contracts = write_project(tmp_path, {"a/Twin.sol": twin, "b/Twin.sol": twin})
    with pytest.raises(CompilationError, match="Twin is defined in"):
        compile_contracts(contracts, build_dir=tmp_path / "build")


def test_solcjs_output_larger_than_64kib_parses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The solcjs route reads outputs past the 64 KiB pipe limit and skips its stdout banner."""
    monkeypatch.setattr(compile_mod, "_native_solc", lambda: None)
    outputs: list[dict[str, Any]] = []
    real = compile_mod._run_solcjs

    def capturing(*args: Any) -> dict[str, Any]:
        outputs.append(real(*args))
        return outputs[-1]

    monkeypatch.setattr(compile_mod, "_run_solcjs", capturing)
    body = "\n".join(
        f"    function f{i}(uint256 a, address b) external returns (uint256) "
        f"{{ values[b] += a + {i}; return values[b]; }}"
        for i in range(150)
    )
    big = PRAGMA + f"contract Big {{\n    mapping(address => uint256) values;\n{body}\n}}\n"
    contracts = write_project(tmp_path, {"Big.sol": big})

    artifacts = compile_contracts(contracts, build_dir=tmp_path / "build")

    assert compile_mod.compiler_description().startswith("solcjs 0.8.28")
    assert len(json.dumps(outputs[0])) > 64 * 1024
    assert len([i for i in artifacts["Big"].abi if i["type"] == "function"]) == 150


# Stands in for a native solc: solcx runs it with --version, then --standard-json on stdin.
FAKE_SOLC = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "Version: 0.8.28+commit.7893614a.Linux.g++"; exit 0; fi
out=$(mktemp)
node "SOLCJS" --standard-json > "$out"
sed -n '/^{/,$p' "$out"
rm -f "$out"
"""


def fake_native_solc(bin_dir: Path) -> Path:
    """Write a `solc` that reports 0.8.28 and answers --standard-json through solcjs."""
    solcjs = paths.node_modules() / "solc" / "solc.js"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "solc"
    script.write_text(FAKE_SOLC.replace("SOLCJS", str(solcjs)), encoding="utf-8")
    script.chmod(0o755)
    return script


def test_native_solc_on_path_is_used_through_py_solc_x(
    greeter_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 0.8.x `solc` on PATH is preferred, and its errors become CompilationError too."""
    bin_dir = greeter_project.parent / "bin"
    script = fake_native_solc(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    assert compile_mod.compiler_description() == f"solc 0.8.28 (native {script})"
    artifacts = compile_contracts(greeter_project, build_dir=greeter_project.parent / "build")
    assert {"greet", "signer"} <= {i.get("name") for i in artifacts["Greeter"].abi}

    (greeter_project / "Greeter.sol").write_text(PRAGMA + "contract Greeter { uint x }")
    with pytest.raises(CompilationError, match="ParserError"):
        compile_contracts(greeter_project, build_dir=greeter_project.parent / "build")


def test_missing_compiler_says_how_to_install_one(
    greeter_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With neither solc nor node on PATH the error points at `make bootstrap`."""
    monkeypatch.setenv("PATH", str(greeter_project.parent / "empty-bin"))
    with pytest.raises(CompilationError, match="make bootstrap"):
        compile_contracts(greeter_project, build_dir=greeter_project.parent / "build")


def test_compiled_bytecode_deploys_and_runs_on_in_process_chain(
    greeter_artifacts: dict[str, ContractArtifact],
) -> None:
    """The creation bytecode deploys on eth-tester and its functions answer."""
    greeter = greeter_artifacts["Greeter"]
    w3 = Web3(Web3.EthereumTesterProvider())
    w3.eth.default_account = w3.eth.accounts[0]
    factory = w3.eth.contract(abi=greeter.abi, bytecode=greeter.bytecode)
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor().transact())
    contract = w3.eth.contract(address=receipt["contractAddress"], abi=greeter.abi)

    assert contract.functions.greet("ada").call() == "hello ada"
    signer = Account.create()
    digest = hashlib.sha256(b"record").digest()
    signature = Account.unsafe_sign_hash(digest, signer.key).signature
    assert contract.functions.signer(digest, signature).call() == signer.address
    assert w3.eth.get_code(contract.address).hex().removeprefix("0x") == (
        greeter.deployed_bytecode.removeprefix("0x")
    )
