"""Consent requests on the command line: `consent request|request-status|requests` (a requester's client) and
`subject requests|grant-request|deny-request` (the data subject, with their own key)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from consentledger.cli import consent as _consent_cli
from consentledger.cli import subject as _subject_cli
from consentledger.cli.common import DevAccountOption, KeystoreOption, PasswordEnvOption, parse_duration, parse_time
from consentledger.cli.common import signer as load_requester
from consentledger.cli.consent import (
    SUBJECT_PASSWORD_ENV,
    GatewayOption,
    SubjectDevAccountOption,
    SubjectKeystoreOption,
    SubjectPasswordEnvOption,
    print_json,
    subject_signer,
    write_output,
)
from consentledger.client import GatewayClient
from consentledger.client_requests import (
    agency_requests,
    deny_request,
    file_request,
    get_request,
    grant_request,
    my_requests,
    seconds_from_now,
)
from consentledger.consent import Consent
from consentledger.errors import ConfigurationError

RequestId = Annotated[str, typer.Argument(help="The consent request's id (0x + 32 hex), as filing it printed.")]
StateOption = Annotated[
    str | None,
    typer.Option("--state", help="Only requests in this state: requested, granted, denied, expired, revoked."),
]
KEY_PASSWORD_ENV = "CONSENTLEDGER_KEY_PASSWORD"


def request(
    subject: Annotated[str, typer.Option(help="The data subject's address.")],
    category: Annotated[int, typer.Option(min=1, max=65535, help="Data category id.")],
    purpose: Annotated[int, typer.Option(min=1, max=255, help="Purpose id.")],
    reason: Annotated[str, typer.Option(help="Why, in words the subject reads before answering.")],
    gateway: GatewayOption,
    record: Annotated[str | None, typer.Option(help="Ask for one record only (0x + 64 hex).")] = None,
    valid_for: Annotated[str, typer.Option(help="How long the consent should last: 3600, 12h, 7d, 2w.")] = "7d",
    max_uses: Annotated[int, typer.Option(min=1, help="How many accesses it should allow.")] = 1,
    identified: Annotated[bool, typer.Option(help="Ask for identifying fields too.")] = False,
    expires_in: Annotated[str, typer.Option(help="How long the subject has to answer: 1h, 7d (90d at most).")] = "7d",
    callback_url: Annotated[str | None, typer.Option(help="POSTed the request, signed by the agency, once answered.")
                            ] = None,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = KEY_PASSWORD_ENV,
    dev_account: DevAccountOption = None,
) -> None:
    """Ask a data subject for a consent naming this agency; prints the request (its id to poll)."""
    with GatewayClient(gateway, load_requester(keystore, password_env, dev_account)) as client:
        print_json(file_request(
            client, subject, category, purpose, seconds_from_now(parse_duration(valid_for)), reason,
            max_uses=max_uses, identified=identified, record=record, expires_in=parse_duration(expires_in),
            callback_url=callback_url,
        ))


def request_status(
    request_id: RequestId,
    gateway: GatewayOption,
    out: Annotated[Path | None, typer.Option(help="Once granted, write the consent here (for `access request`).")
                   ] = None,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = KEY_PASSWORD_ENV,
    dev_account: DevAccountOption = None,
) -> None:
    """Print a consent request in its state now (requested, granted, denied, expired, revoked)."""
    with GatewayClient(gateway, load_requester(keystore, password_env, dev_account)) as client:
        answer = get_request(client, request_id)
    print_json(answer)
    if out is not None:
        if answer.get("consent") is None:
            raise ConfigurationError(f"request {request_id} is {answer.get('state')}: there is no consent to write")
        write_output(out, Consent.from_json(answer["consent"]).to_json(), "consent file")


def requests(
    gateway: GatewayOption,
    state: StateOption = None,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = KEY_PASSWORD_ENV,
    dev_account: DevAccountOption = None,
) -> None:
    """Print the consent requests this agency filed, newest first."""
    with GatewayClient(gateway, load_requester(keystore, password_env, dev_account)) as client:
        print_json(agency_requests(client, state))


def subject_requests(
    gateway: GatewayOption,
    state: Annotated[str | None, typer.Option(help="requested (the default: awaiting an answer), granted, denied, "
                                                   "expired, revoked, or all.")] = "requested",
    subject_keystore: SubjectKeystoreOption = None,
    subject_password_env: SubjectPasswordEnvOption = SUBJECT_PASSWORD_ENV,
    subject_dev_account: SubjectDevAccountOption = None,
) -> None:
    """Print the consent requests made to the subject at this gateway, newest first."""
    account = subject_signer(subject_keystore, subject_password_env, subject_dev_account)
    with GatewayClient(gateway, account) as client:
        print_json(my_requests(client, None if state == "all" else state))


def grant(
    request_id: RequestId,
    gateway: GatewayOption,
    valid_for: Annotated[str | None, typer.Option(help="Grant for less time than asked: 3600, 12h, 7d.")] = None,
    valid_until: Annotated[str | None, typer.Option(help="Or grant until: ISO-8601 or unix seconds.")] = None,
    max_uses: Annotated[int | None, typer.Option(min=1, help="Allow fewer accesses than asked.")] = None,
    not_identified: Annotated[bool, typer.Option(help="Withhold identifying fields though they were asked.")] = False,
    record: Annotated[str | None, typer.Option(help="Allow one record only (0x + 64 hex).")] = None,
    subject_keystore: SubjectKeystoreOption = None,
    subject_password_env: SubjectPasswordEnvOption = SUBJECT_PASSWORD_ENV,
    subject_dev_account: SubjectDevAccountOption = None,
) -> None:
    """Grant a consent request, narrowed as the options say, signing the consent with the subject's key."""
    if valid_for is not None and valid_until is not None:
        raise ConfigurationError("give --valid-for or --valid-until, not both")
    until = seconds_from_now(parse_duration(valid_for)) if valid_for is not None else (
        parse_time(valid_until) if valid_until is not None else None)
    account = subject_signer(subject_keystore, subject_password_env, subject_dev_account)
    with GatewayClient(gateway, account) as client:
        print_json(grant_request(client, request_id, valid_until=until, max_uses=max_uses,
                                 identified=False if not_identified else None, record=record))


def deny(
    request_id: RequestId,
    gateway: GatewayOption,
    subject_keystore: SubjectKeystoreOption = None,
    subject_password_env: SubjectPasswordEnvOption = SUBJECT_PASSWORD_ENV,
    subject_dev_account: SubjectDevAccountOption = None,
) -> None:
    """Deny a consent request with the subject's key."""
    account = subject_signer(subject_keystore, subject_password_env, subject_dev_account)
    with GatewayClient(gateway, account) as client:
        print_json(deny_request(client, request_id))


def register(consent_app: typer.Typer, subject_app: typer.Typer) -> None:
    """Attach the requester's commands to `consent` and the subject's to `subject`."""
    consent_app.command("request")(request)
    consent_app.command("request-status")(request_status)
    consent_app.command("requests")(requests)
    subject_app.command("requests")(subject_requests)
    subject_app.command("grant-request")(grant)
    subject_app.command("deny-request")(deny)


# `consent` and `subject` with the request commands attached (what the top-level command loads).
consent_app, subject_app = _consent_cli.app, _subject_cli.app
register(consent_app, subject_app)
