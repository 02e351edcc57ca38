"""The gateway's `/audit` web page: one-time links from signed requests, cookie sessions, and the page in Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from consentledger import governance
from consentledger.client import GatewayClient
from consentledger.gateway.routes.audit_page import COOKIE
from consentledger.types import Role

from .conftest import REFUSED_RULES, Audited
from .world import Consortium, expect, signed

pytestmark = pytest.mark.process

CHROMIUM = "/usr/bin/chromium"
CLI = str(Path(sys.executable).parent / "consentledger")


def page_link(gateway_url: str, account: LocalAccount, view: str | None = None) -> dict[str, Any]:
    """Return the gateway's answer to `account`'s signed request for an audit page link."""
    with GatewayClient(gateway_url, account) as client:
        return client.open_audit_page(view)


def open_link(url: str) -> httpx.Client:
    """Open a one-time link like a browser would (following the redirect); return the client holding the cookie."""
    browser = httpx.Client(trust_env=False, timeout=60, follow_redirects=True)
    response = browser.get(url)
    assert response.status_code == 200, response.text[:300]
    return browser


def shown_records(html: str) -> set[str]:
    """Return the record ids of the timeline rows in a page."""
    accesses = html.split('<section id="refusals">', 1)[0]
    marker = 'data-record="'
    return {part.split('"', 1)[0] for part in accesses.split(marker)[1:] if part.startswith("0x")}


def refused_rows(html: str) -> list[tuple[str, str, str]]:
    """Return (record, requester, rule) of the "Refused attempts" rows in a page, in order."""
    refusals = html.split('<section id="refusals">', 1)[1].split("</section>", 1)[0]

    def attr(row: str, name: str) -> str:
        return row.split(f'{name}="', 1)[1].split('"', 1)[0]

    return [(attr(row, "data-record"), attr(row, "data-requester"), attr(row, "data-rule"))
            for row in refusals.split("<tr ")[1:] if "data-rule=" in row]


@pytest.fixture(scope="module")
def auditor_page(consortium: Consortium, audited: Audited) -> Iterator[httpx.Client]:
    """A client holding the auditor's page session at health's gateway."""
    link = page_link(consortium.health.url, audited.auditor)
    browser = open_link(link["url"])
    yield browser
    browser.close()


def test_an_auditor_gets_a_one_time_link_that_sets_a_locked_down_cookie(
    consortium: Consortium, audited: Audited
) -> None:
    """The link redirects to /audit with an HttpOnly, SameSite=Strict cookie; opened twice, it is refused."""
    link = page_link(consortium.health.url, audited.auditor)
    assert (link["view"], link["viewer"]) == ("audit", audited.auditor.address)
    assert link["url"].startswith(consortium.health.url + "/audit?token=")

    first = httpx.get(link["url"], trust_env=False, timeout=60)
    assert first.status_code == 303 and first.headers["location"] == "/audit"
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/audit" in cookie and "Max-Age=" in cookie
    assert link["url"].split("token=")[1] not in cookie  # the cookie is a fresh secret, not the link's

    again = httpx.get(link["url"], trust_env=False, timeout=60)
    assert "already opened" in expect(again, 401, "unauthenticated")["detail"]


def test_the_auditor_page_shows_every_access_with_graph_verdict_and_strict_headers(
    consortium: Consortium, audited: Audited, auditor_page: httpx.Client
) -> None:
    """The page lists the audited accesses, draws edges, says the index verified, and forbids framing and caching."""
    response = auditor_page.get(consortium.health.url + "/audit")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert {audited.lab, audited.stats, audited.contact} <= shown_records(page)
    assert 'class="edge"' in page and "Verified: no discrepancies." in page
    assert '<section id="legal-bases">' in page and "No emergency override was recorded." in page
    assert all(f"<th>{column}</th>" in page for column in ("seq", "identifying fields", "consent (terms, state)"))
    lab_rows = [row for row in page.split("<tr ")[1:] if f'data-record="{audited.lab}"' in row and "data-seq=" in row]
    assert [row.split('data-seq="', 1)[1].split('"', 1)[0] for row in lab_rows] == ["1", "2"]
    assert all('<span class="consent" data-state="' in row and " uses, " in row for row in lab_rows)
    inspector = audited.inspector.address
    assert [row for row in refused_rows(page) if row[1] == inspector] == [
        (audited.lab, inspector, REFUSED_RULES[0]), (audited.contact, inspector, REFUSED_RULES[1]),
    ]
    assert "<h2>Refused attempts</h2>" in page and "the consent was given to another organisation" in page
    assert response.headers["cache-control"] == "no-store" and response.headers["x-frame-options"] == "DENY"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp


def test_server_side_filters_narrow_the_auditor_page(
    consortium: Consortium, audited: Audited, auditor_page: httpx.Client
) -> None:
    """`?subject=`, `?record=` and `?org=` are applied by the gateway; the API answers a bad one 422 in JSON."""
    url = consortium.health.url + "/audit"
    assert shown_records(auditor_page.get(url, params={"subject": audited.bob.address}).text) == {audited.contact}
    assert shown_records(auditor_page.get(url, params={"record": audited.lab}).text) == {audited.lab}
    by_police = shown_records(auditor_page.get(url, params={"org": consortium.police.address,
                                                            "subject": audited.alice.address}).text)
    assert by_police == {audited.stats}
    assert [rule for *_, rule in refused_rows(auditor_page.get(url, params={"subject": audited.bob.address}).text)
            ] == [REFUSED_RULES[1]]
    # police made none of the audited attempts (other modules' refused attempts by police may be on the page)
    by_police_refused = refused_rows(auditor_page.get(url, params={"org": consortium.police.address}).text)
    assert not {record for record, *_ in by_police_refused} & {audited.lab, audited.contact}
    assert {requester for _, requester, _ in by_police_refused} <= {consortium.police.address}
    expect(signed(consortium.health, audited.auditor.key, "GET", "/v1/audit/accesses?org=police"),
           422, "invalid_request")


def test_a_bad_filter_on_the_page_answers_a_readable_html_page(
    consortium: Consortium, auditor_page: httpx.Client
) -> None:
    """`?since=2026-12-01` and `?org=police` answer 422 with an HTML sentence each naming the filter and its form."""
    response = auditor_page.get(consortium.health.url + "/audit", params={"since": "2026-12-01", "org": "police"})

    assert response.status_code == 422 and response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store" and response.headers["x-frame-options"] == "DENY"
    errors = response.text.split('<ul id="filter-errors">', 1)[1].split("</ul>", 1)[0]
    assert errors.count("<li>") == 2
    assert ("The filter “since” must be a moment in Unix seconds, a whole number such as 1764547200; "
            "it was “2026-12-01”. For 2026-12-01 (UTC) use since=1796083200.") in errors
    assert "The filter “org” must be an organisation&#x27;s address: 0x followed by 40 hexadecimal digits; " \
        "it was “police”." in errors


def test_a_subject_page_shows_only_the_subjects_own_records(consortium: Consortium, audited: Audited) -> None:
    """Alice's page (at transport's gateway) lists her records only, checks their heads, refuses Bob's subject."""
    link = page_link(consortium.transport.url, audited.alice)
    assert (link["view"], link["viewer"]) == ("subject", audited.alice.address)
    with closing(open_link(link["url"])) as browser:
        page = browser.get(consortium.transport.url + "/audit")
        refused = browser.get(consortium.transport.url + "/audit", params={"subject": audited.bob.address})

    assert shown_records(page.text) == {audited.lab, audited.stats}
    assert f"Your data ({audited.alice.address})" in page.text and "Verified: no discrepancies." in page.text
    # Who tried to read her data and was refused: the inspectorate, for her lab record only.
    assert refused_rows(page.text) == [(audited.lab, audited.inspector.address, REFUSED_RULES[0])]
    assert "inspectorate" in page.text
    assert "own records" in expect(refused, 403, "forbidden")["detail"]


@pytest.mark.parametrize("who", ["subject", "requester"])
def test_only_an_auditor_may_ask_for_the_audit_view(consortium: Consortium, audited: Audited, who: str) -> None:
    """Asking for view=audit as a data subject or as a requester organisation answers 403."""
    key = audited.alice.key if who == "subject" else consortium.key(consortium.transport)

    response = signed(consortium.health, key, "POST", "/v1/audit/session", {"view": "audit"})

    expect(response, 403, "forbidden")


@pytest.mark.parametrize("body", [{"view": "everything"}, {"view": "audit", "extra": 1}])
def test_a_bad_session_request_is_refused(consortium: Consortium, audited: Audited, body: dict[str, Any]) -> None:
    """An unknown view or field answers 422 naming it; an unsigned request answers 401."""
    response = signed(consortium.health, audited.auditor.key, "POST", "/v1/audit/session", body)

    assert ("view" if body["view"] == "everything" else "extra") in expect(response, 422, "invalid_payload")["detail"]
    expect(httpx.post(consortium.health.url + "/v1/audit/session", json={}, trust_env=False), 401, "unauthenticated")


@pytest.mark.parametrize("cookie", [None, "forged", "x" * 43])
def test_the_page_without_a_live_session_is_refused(consortium: Consortium, cookie: str | None) -> None:
    """No cookie, a forged cookie or an unknown link token: 401 naming what to do."""
    cookies = {COOKIE: cookie} if cookie else None
    with httpx.Client(trust_env=False, cookies=cookies) as browser:
        response = browser.get(consortium.health.url + "/audit")
        bad_link = browser.get(consortium.health.url + "/audit", params={"token": "not-a-token"})

    assert "audit open" in expect(response, 401, "unauthenticated")["detail"]
    expect(bad_link, 401, "unauthenticated")


def test_a_suspended_auditors_session_shows_nothing(consortium: Consortium, audited: Audited) -> None:
    """An auditor suspended by governance after opening the page gets 403 on the next load."""
    auditor = Account.create()
    consortium.govern(governance.admit_member(auditor.address, Role.AUDITOR, "second audit office"))
    with closing(open_link(page_link(consortium.health.url, auditor)["url"])) as browser:
        assert browser.get(consortium.health.url + "/audit").status_code == 200
        consortium.govern(governance.suspend_member(auditor.address))
        deadline = time.monotonic() + 15
        while (response := browser.get(consortium.health.url + "/audit")).status_code == 200:
            assert time.monotonic() < deadline, "the suspension never reached the page"
            time.sleep(0.3)

    assert "suspended" in expect(response, 403, "forbidden")["detail"]


def test_audit_open_prints_a_link_for_a_subject_keystore(
    consortium: Consortium, audited: Audited, tmp_path: Path
) -> None:
    """`consentledger audit open --subject-keystore` prints one URL that opens Bob's page; bad flags exit non-zero."""
    keystore = tmp_path / "bob.json"
    keystore.write_text(json.dumps(Account.encrypt(audited.bob.key, "bob-pw", kdf="scrypt", iterations=2**12)))
    env = {**os.environ, "BOB_PASSWORD": "bob-pw"}
    args = [CLI, "audit", "open", "--gateway", consortium.police.url]

    done = subprocess.run([*args, "--subject-keystore", str(keystore), "--subject-password-env", "BOB_PASSWORD"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [url] = done.stdout.split()
    assert "subject view for " + audited.bob.address in done.stderr
    with closing(open_link(url)) as browser:
        assert shown_records(browser.get(consortium.police.url + "/audit").text) == {audited.contact}

    both = subprocess.run([*args, "--dev-account", "1", "--subject-keystore", str(keystore)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert both.returncode != 0 and "not both" in both.stderr
    wrong_view = subprocess.run([*args, "--subject-keystore", str(keystore), "--subject-password-env",
                                 "BOB_PASSWORD", "--view", "audit"], env=env, capture_output=True, text=True,
                                timeout=120)
    assert wrong_view.returncode != 0 and "403" in wrong_view.stderr


def test_the_page_loads_filters_and_links_in_headless_chromium(
    consortium: Consortium, audited: Audited, tmp_path: Path
) -> None:
    """In Chromium the link opens the page, client filters hide rows, a record link re-renders it filtered, no
    request leaves the gateway, and a screenshot is taken."""
    from playwright.sync_api import sync_playwright

    link = page_link(consortium.health.url, audited.auditor)
    outside: list[str] = []
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run",
        ])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.on("request", lambda r: None if r.url.startswith(consortium.health.url) else outside.append(r.url))
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(link["url"])

            assert page.url == consortium.health.url + "/audit"  # the token left the address bar
            assert page.title().startswith("Audit: who accessed what")
            # Tombstone rows (records erased by other modules of the shared consortium) are not accesses.
            rows = page.locator("#accesses tbody tr:not(.ended)")
            visible = page.locator("#accesses tbody tr:not(.ended):visible")
            total = rows.count()
            assert total >= 4 and visible.count() == total
            assert page.locator("svg.flow g.edge").count() >= 2
            refused = page.locator("#refused tbody tr:visible")
            assert refused.count() >= len(REFUSED_RULES)
            page.locator("#filter-requester").press_sequentially("inspectorate")
            assert visible.count() == 0 and refused.count() == len(REFUSED_RULES)
            assert refused.evaluate_all("rs => rs.map(r => r.dataset.rule)") == list(REFUSED_RULES)
            page.locator("#filter-requester").fill("")

            page.locator("#filter-requester").press_sequentially("police")
            police_rows = visible.evaluate_all("rs => rs.map(r => r.dataset.requester)")
            assert police_rows and set(police_rows) == {consortium.police.address}
            assert page.locator("svg.flow g.edge.dim").count() >= 1
            page.locator("#filter-requester").fill("")
            assert visible.count() == total

            page.locator(f'#accesses a[href="?record={audited.lab}"]').first.click()
            page.wait_for_url(f"**/audit?record={audited.lab}")
            assert set(visible.evaluate_all("rs => rs.map(r => r.dataset.record)")) == {audited.lab}
            assert visible.count() == 2

            shot = tmp_path / "audit-page.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
    assert outside == [] and problems == []
