// The subject portal: sign in with a standard EIP-1193 wallet, then answer requests, revoke, read and erase.
// No framework and no build step; the DOM is built with createElement/textContent only (never innerHTML), and
// every 64-bit value (nonce, validUntil, uses) stays the decimal string the gateway sent: BigInt, never Number.
"use strict";

(function () {
  const API = "/portal/api";
  const ZERO_RECORD = "0x" + "0".repeat(64);
  const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December"];
  const state = { subject: null, expiresAt: null, overview: null, erasure: null };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function clear(node) { node.replaceChildren(); return node; }

  // ---- talking to the gateway and to the wallet -------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, detail, body) {
      super(detail || code || ("HTTP " + status));
      this.status = status; this.code = code; this.body = body;
    }
  }
  class PageError extends Error {}

  async function api(method, path, body) {
    const options = { method, credentials: "same-origin", headers: { "X-CL-Portal": "1", "Accept": "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(API + path, options);
    } catch (exc) {
      throw new PageError("The gateway could not be reached. Check your connection and try again.");
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (exc) { data = null; }
    }
    if (!response.ok) {
      const detail = data && typeof data.detail === "string" ? data.detail : text.slice(0, 300);
      throw new ApiError(response.status, data && data.error, detail, data);
    }
    return data;
  }

  function wallet() {
    if (!window.ethereum || typeof window.ethereum.request !== "function") {
      $("no-wallet").hidden = false;
      throw new PageError("No wallet was found in this browser, so you cannot sign in yet (see below).");
    }
    return window.ethereum;
  }

  async function ensureChain(typedData) {
    const wanted = typedData && typedData.domain ? typedData.domain.chainId : undefined;
    if (wanted === undefined || wanted === null) return;
    const current = await wallet().request({ method: "eth_chainId" });
    if (BigInt(current) === BigInt(wanted)) return;
    try {
      await wallet().request({ method: "wallet_switchEthereumChain", params: [{ chainId: "0x" + BigInt(wanted).toString(16) }] });
    } catch (exc) {
      throw new PageError("Your wallet is on another network. Switch it to the ledger's network (chain id " +
        BigInt(wanted).toString() + ") and try again.");
    }
  }

  async function signTyped(typedData) {
    await ensureChain(typedData);
    return wallet().request({ method: "eth_signTypedData_v4", params: [state.subject, JSON.stringify(typedData)] });
  }

  function explain(exc) {
    if (exc instanceof ApiError) {
      if (exc.status === 401) return "Your session has ended or the signature was not accepted: " + exc.message;
      return "The gateway refused this: " + exc.message + (exc.code ? " (" + exc.code + ")" : "");
    }
    if (exc instanceof PageError) return exc.message;
    if (exc && exc.code === 4001) return "You declined in your wallet, so nothing was done.";
    if (exc && exc.code === 4100) return "Your wallet has not allowed this page to use your account.";
    if (exc && (exc.code === 4900 || exc.code === 4901)) return "Your wallet is not connected to the network.";
    return "Something went wrong: " + (exc && exc.message ? exc.message : String(exc));
  }

  function say(text) { clear($("problem")); $("status").textContent = text; }

  function fail(exc) {
    $("status").textContent = "";
    clear($("problem")).append(el("p", {}, explain(exc)));
    if (exc instanceof ApiError && exc.status === 401 && state.subject) showSignedOut();
  }

  async function act(container, work) {
    const buttons = Array.from(container.querySelectorAll("button, input, select"));
    buttons.forEach((b) => { b.disabled = true; });
    container.setAttribute("aria-busy", "true");
    try {
      await work();
    } catch (exc) {
      fail(exc);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      container.removeAttribute("aria-busy");
    }
  }

  // ---- dates and 64-bit numbers (BigInt only) ---------------------------------------------------------------

  function civilFromDays(days) {
    const z = days + 719468n;
    const era = (z >= 0n ? z : z - 146096n) / 146097n;
    const doe = z - era * 146097n;
    const yoe = (doe - doe / 1460n + doe / 36524n - doe / 146096n) / 365n;
    const doy = doe - (365n * yoe + yoe / 4n - yoe / 100n);
    const mp = (5n * doy + 2n) / 153n;
    const day = doy - (153n * mp + 2n) / 5n + 1n;
    const month = mp < 10n ? mp + 3n : mp - 9n;
    return [yoe + era * 400n + (month <= 2n ? 1n : 0n), month, day];
  }

  function daysFromCivil(year, month, day) {
    const y = year - (month <= 2n ? 1n : 0n);
    const era = (y >= 0n ? y : y - 399n) / 400n;
    const yoe = y - era * 400n;
    const doy = (153n * (month > 2n ? month - 3n : month + 9n) + 2n) / 5n + day - 1n;
    return era * 146097n + yoe * 365n + yoe / 4n - yoe / 100n + doy - 719468n;
  }

  function isoDay(seconds) {
    const [y, m, d] = civilFromDays(seconds / 86400n);
    return y.toString().padStart(4, "0") + "-" + m.toString().padStart(2, "0") + "-" + d.toString().padStart(2, "0");
  }

  function endOfDay(iso) {
    const parts = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso);
    if (!parts) return null;
    return daysFromCivil(BigInt(parts[1]), BigInt(parts[2]), BigInt(parts[3])) * 86400n + 86399n;
  }

  function nowSeconds() { return BigInt(Date.now()) / 1000n; }

  function whenText(iso) {
    const moment = new Date(iso);
    if (isNaN(moment.getTime())) return iso;
    const hh = String(moment.getUTCHours()).padStart(2, "0");
    const mm = String(moment.getUTCMinutes()).padStart(2, "0");
    return moment.getUTCDate() + " " + MONTHS[moment.getUTCMonth()] + " " + moment.getUTCFullYear() + " at " +
      hh + ":" + mm + " UTC";
  }

  function times(count) { return count === "1" ? "once" : count + " times"; }

  function shortId(id) { return id && id.length > 14 ? id.slice(0, 10) + "…" + id.slice(-4) : String(id); }

  function list(items) { return items && items.length ? items.join(", ") : "none"; }

  // ---- signing in and out -----------------------------------------------------------------------------------

  async function signIn() {
    try {
      await connectAndSign();
    } catch (exc) {
      state.subject = null;
      throw exc;
    }
  }

  async function connectAndSign() {
    const accounts = await wallet().request({ method: "eth_requestAccounts" });
    if (!accounts || !accounts.length) throw new PageError("Your wallet did not share an account with this page.");
    state.subject = accounts[0];
    say("Your wallet asks you to sign a message that proves the account is yours…");
    const challenge = await api("POST", "/challenge", { subject: state.subject });
    const signature = await signTyped(challenge.typed_data);
    const session = await api("POST", "/session", { challenge: challenge.challenge, signature });
    state.subject = session.subject;
    state.expiresAt = session.expires_at;
    await refresh();
    say("You are signed in.");
    $("pending-title").focus();
  }

  async function signOut() {
    await api("POST", "/logout", {});
    showSignedOut();
    say("You are signed out.");
    $("connect").focus();
  }

  function showSignedOut() {
    state.subject = null; state.overview = null; state.expiresAt = null; state.erasure = null;
    $("signed-in").hidden = true; $("account").hidden = true; $("signed-out").hidden = false;
    document.title = "Your consents and records";
  }

  async function refresh() {
    const overview = await api("GET", "/overview");
    state.overview = overview;
    state.subject = overview.subject;
    render(overview);
  }

  // ---- rendering ---------------------------------------------------------------------------------------------

  function render(o) {
    $("signed-out").hidden = true; $("signed-in").hidden = false; $("account").hidden = false;
    document.title = "Your consents and records: signed in";
    $("served-by").textContent = "Served by " + o.gateway.name + ".";
    $("signed-in-as").textContent = "Signed in as " + o.subject +
      (state.expiresAt ? ", until " + whenText(state.expiresAt) : "") + ".";
    $("as-of").textContent = "As the ledger stood on " + whenText(o.as_of.time) + " (block " + o.as_of.block + ").";
    renderUnreachable(o.unreachable || []);
    const pending = o.requests.filter((r) => r.state === "requested");
    fill("pending-list", pending.map(pendingRequest), "No organisation is waiting for your answer.");
    fill("consents-list", o.consents.map(liveConsent), "You have no consent in force.");
    fill("records-list", o.records.map(record), "No member organisation holds a record about you.");
    renderErasure(o);
    const answered = o.requests.filter((r) => r.state !== "requested");
    fill("answered-list", answered.length ? [el("ul", {}, answered.map(answeredRequest))] : [],
      "No request has been answered or has expired yet.");
  }

  function fill(id, nodes, empty) {
    const box = clear($(id));
    if (nodes.length) box.append(...nodes); else box.append(el("p", { class: "empty" }, empty));
  }

  function renderUnreachable(peers) {
    $("unreachable").hidden = peers.length === 0;
    clear($("unreachable-list")).append(...peers.map((p) =>
      el("li", {}, p.name + " did not answer: " + p.error + ".")));
  }

  function terms(rows) {
    return el("dl", { class: "terms" }, rows.filter(Boolean).map(([label, value]) =>
      el("div", {}, el("dt", {}, label), el("dd", {}, value))));
  }

  function identifiedText(identified, category) {
    const fields = category.identifying_fields || [];
    if (!fields.length) return identified ? "Yes (this kind of record holds nothing that names you)" : "No";
    return identified ? "Yes: they would see " + list(fields)
      : "No: " + list(fields) + " would be hidden from them";
  }

  function pendingRequest(r) {
    const heading = "request-" + r.id;
    const card = el("article", { class: "card", "aria-labelledby": heading });
    const form = narrowForm(r, card);
    const narrow = el("button", { type: "button", class: "secondary", "aria-expanded": "false",
      "aria-controls": form.id }, "Narrow");
    narrow.addEventListener("click", () => {
      form.hidden = !form.hidden;
      narrow.setAttribute("aria-expanded", String(!form.hidden));
      if (!form.hidden) form.querySelector("input").focus();
    });
    const approve = el("button", { type: "button", class: "primary" }, "Approve");
    approve.addEventListener("click", () => act(card, () => grant(r, {})));
    const deny = el("button", { type: "button", class: "danger" }, "Deny");
    deny.addEventListener("click", () => act(card, () => answerDeny(r)));
    card.append(
      el("h3", { id: heading }, r.requester.name + " asks to see your " + r.category.name),
      el("p", { class: "reason" }, "Why, in their words: “" + r.reason + "”"),
      terms([
        ["For", r.purpose.name],
        ["What they would see", list(r.category.fields)],
        ["Identified", identifiedText(r.identified, r.category)],
        ["Which records", r.record ? "Only one record (" + shortId(r.record) + ")" : "Every " + r.category.name + " record about you"],
        ["For how long", "Until " + r.valid_until_text],
        ["How many uses", times(r.max_uses)],
        ["Asked", r.asked_at_text],
        ["Answer before", r.expires_at_text],
        ["Asked through", r.gateway.name],
      ]),
      el("div", { class: "actions" }, approve, narrow, deny),
      form);
    return card;
  }

  function narrowForm(r, card) {
    const id = "narrow-" + r.id;
    const form = el("form", { id, class: "narrow", hidden: true, novalidate: true });
    const validUntil = BigInt(r.valid_until);
    const today = isoDay(nowSeconds());
    const lastDay = isoDay(validUntil);
    const date = el("input", { type: "date", id: id + "-until", name: "valid_until", min: today, max: lastDay, value: lastDay,
      "aria-describedby": id + "-until-hint" });
    const uses = el("input", { type: "number", id: id + "-uses", name: "max_uses", min: "1", max: r.max_uses, step: "1",
      value: r.max_uses, inputmode: "numeric", "aria-describedby": id + "-uses-hint" });
    const rows = [
      el("div", { class: "field" }, el("label", { for: date.id }, "Valid until the end of"), date,
        el("p", { class: "hint", id: id + "-until-hint" }, "A day (UTC) no later than " + r.valid_until_text + ".")),
      el("div", { class: "field" }, el("label", { for: uses.id }, "Number of uses"), uses,
        el("p", { class: "hint", id: id + "-uses-hint" }, "At most " + r.max_uses + ".")),
    ];
    let hide = null;
    if (r.identified) {
      hide = el("input", { type: "checkbox", id: id + "-hide", name: "not_identified" });
      rows.push(el("div", { class: "field check" }, hide,
        el("label", { for: hide.id }, "Hide what identifies me (" + list(r.category.identifying_fields) + ")")));
    }
    let one = null;
    const mine = (state.overview.records || []).filter((rec) => rec.state === "held" &&
      String(rec.category.id) === String(r.category.id));
    if (!r.record && mine.length) {
      one = el("select", { id: id + "-record", name: "record" },
        el("option", { value: "" }, "Every " + r.category.name + " record about you"),
        mine.map((rec) => el("option", { value: rec.id }, "Only the one " + rec.custodian.name + " collected on " +
          rec.collected_at_text + " (" + shortId(rec.id) + ")")));
      rows.push(el("div", { class: "field" }, el("label", { for: one.id }, "Which records"), one));
    }
    const submit = el("button", { type: "submit", class: "primary" }, "Approve with these limits");
    const cancel = el("button", { type: "button", class: "secondary" }, "Cancel");
    cancel.addEventListener("click", () => { form.hidden = true; card.querySelector("[aria-expanded]").setAttribute("aria-expanded", "false"); });
    form.append(el("fieldset", {}, el("legend", {}, "Narrow what " + r.requester.name + " may do"), rows,
      el("div", { class: "actions" }, submit, cancel)));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      act(card, async () => grant(r, narrowing(r, date.value, uses.value, hide && hide.checked, one && one.value)));
    });
    return form;
  }

  function narrowing(r, day, uses, hide, record) {
    const chosen = {};
    const end = endOfDay(day);
    if (end === null) throw new PageError("Choose the last day the consent is valid, as a date.");
    if (end < nowSeconds()) throw new PageError("The last valid day cannot be in the past.");
    if (end < BigInt(r.valid_until)) chosen.valid_until = end.toString();
    else if (day !== isoDay(BigInt(r.valid_until))) throw new PageError("The consent cannot last longer than asked (until " + r.valid_until_text + ").");
    if (!/^[1-9][0-9]*$/.test(uses)) throw new PageError("The number of uses must be a whole number, 1 or more.");
    if (BigInt(uses) > BigInt(r.max_uses)) throw new PageError("You can allow at most the " + r.max_uses + " uses asked.");
    if (BigInt(uses) < BigInt(r.max_uses)) chosen.max_uses = BigInt(uses).toString();
    if (hide) chosen.identified = false;
    if (record) chosen.record = record;
    return chosen;
  }

  function checkPrepared(message, r, chosen) {
    const same = (a, b) => String(a).toLowerCase() === String(b).toLowerCase();
    const expected = [
      ["subject", message.subject, state.subject], ["grantee", message.grantee, r.requester.org],
      ["validUntil", message.validUntil, chosen.valid_until || r.valid_until],
      ["maxUses", message.maxUses, chosen.max_uses || r.max_uses],
      ["identified", message.identified, chosen.identified === false ? false : r.identified],
      ["record", message.record, chosen.record || r.record || ZERO_RECORD],
    ];
    const off = expected.filter(([, got, want]) => !same(got, want)).map(([name]) => name);
    if (off.length) throw new PageError("The consent the gateway prepared differs from what you chose (" + off.join(", ") + "); nothing was signed.");
  }

  async function grant(r, chosen) {
    const path = "/requests/" + encodeURIComponent(r.gateway.org) + "/" + encodeURIComponent(r.id);
    say("Preparing the consent for your wallet to sign…");
    const prepared = await api("POST", path + "/consent", chosen);
    checkPrepared(prepared.typed_data.message, r, chosen);
    const signature = await signTyped(prepared.typed_data);
    say("Sending your signed consent…");
    await api("POST", path + "/grant", Object.assign({}, chosen, { nonce: prepared.nonce, signature }));
    await refresh();
    say("You approved the request of " + r.requester.name + ".");
    $("consents-title").focus();
  }

  async function answerDeny(r) {
    const path = "/requests/" + encodeURIComponent(r.gateway.org) + "/" + encodeURIComponent(r.id) + "/deny";
    await api("POST", path, {});
    await refresh();
    say("You refused the request of " + r.requester.name + ".");
    $("pending-title").focus();
  }

  function liveConsent(c) {
    const heading = "consent-" + c.id;
    const card = el("article", { class: "card", "aria-labelledby": heading });
    const revoke = el("button", { type: "button", class: "danger" }, "Revoke");
    revoke.addEventListener("click", () => act(card, async () => {
      say("Your wallet asks you to sign the revocation…");
      const signature = await signTyped(c.revoke_typed_data);
      const answer = await api("POST", "/consents/revoke", { consent: c.terms, signature });
      await refresh();
      say("You revoked the consent you gave " + c.grantee.name + "; the revocation is " +
        (answer.revocation && answer.revocation.status ? answer.revocation.status : "sent") + ".");
      $("consents-title").focus();
    }));
    const record = c.record !== undefined ? c.record
      : (c.terms && c.terms.record && c.terms.record !== ZERO_RECORD ? c.terms.record : null);
    card.append(
      el("h3", { id: heading }, c.grantee.name + " may see your " + c.category.name),
      terms([
        ["For", c.purpose.name],
        ["Which records", record ? "Only one record (" + shortId(record) + ")" : "Every " + c.category.name + " record about you"],
        ["Identified", identifiedText(c.identified, c.category)],
        ["Valid until", c.valid_until_text],
        ["Uses left", c.uses_left],
        ["Consent", shortId(c.id)],
      ]),
      el("div", { class: "actions" }, revoke));
    return card;
  }

  const ENDED = {
    erased: "erased",
    expired: "deleted at the end of the time it may be kept",
    sunset: "deleted because the purpose it was kept for has ended",
  };

  function endedText(r) {
    if (r.state === "held") return "Held now.";
    const how = r.ended_text || ENDED[r.state] || r.state;
    return how.slice(0, 1).toUpperCase() + how.slice(1) + (r.ended_at_text ? " on " + r.ended_at_text : "") + ".";
  }

  function access(a) {
    const details = "Ledger entry " + a.seq + (a.person ? "; by a " + a.person : "") +
      (a.consent ? "; consent " + shortId(a.consent) : "; no consent was needed") + ".";
    return el("li", {}, el("p", {}, a.sentence), el("p", { class: "muted small" }, details));
  }

  function record(r) {
    const heading = "record-" + r.id;
    const ended = endedText(r);
    const accesses = r.accesses.length
      ? el("ol", { class: "accesses" }, r.accesses.map(access))
      : el("p", { class: "empty" }, "Nobody has looked at this record.");
    return el("article", { class: "card record", "aria-labelledby": heading, "data-state": r.state },
      el("h3", { id: heading }, (r.derived ? "A record made from your " : "Your ") + r.category.name + " held by " +
        r.custodian.name),
      el("p", {}, "Collected on " + r.collected_at_text + ". " + ended),
      el("h4", {}, "Who looked at it"), accesses);
  }

  function renderErasure(o) {
    const body = clear($("erasure-body"));
    if (state.erasure) body.append(erasureOutcome(state.erasure));
    if (!o.erasure.possible) {
      body.append(el("p", {}, "There is nothing to erase: no member organisation holds a record about you now."));
      return;
    }
    const n = String(o.erasure.live_consents);
    body.append(el("p", {}, "Erasing asks every organisation that holds your records to destroy them for good. " +
      (n === "0" ? "You have no consent in force." : "Your " + (n === "1" ? "consent" : n + " consents") +
        " in force will be revoked first: your wallet asks you to sign each revocation.")));
    const start = el("button", { type: "button", class: "danger", "aria-expanded": "false", "aria-controls": "erasure-confirm" },
      "Erase my records…");
    const confirm = el("div", { id: "erasure-confirm", class: "confirm", role: "group", "aria-labelledby": "erasure-confirm-title", hidden: true });
    const yes = el("button", { type: "button", class: "danger" }, "Yes, erase my records");
    const no = el("button", { type: "button", class: "secondary" }, "Keep my records");
    confirm.append(el("h3", { id: "erasure-confirm-title", tabindex: "-1" }, "Erase all your records?"),
      el("p", {}, "This cannot be undone. The organisations keep only the fact that a record existed and was erased."),
      el("div", { class: "actions" }, yes, no));
    start.addEventListener("click", () => { confirm.hidden = false; start.setAttribute("aria-expanded", "true"); $("erasure-confirm-title").focus(); });
    no.addEventListener("click", () => { confirm.hidden = true; start.setAttribute("aria-expanded", "false"); start.focus(); });
    yes.addEventListener("click", () => act(body, () => erase(o)));
    body.append(el("div", { class: "actions" }, start), confirm);
  }

  async function erase(o) {
    const revocations = [];
    for (const c of o.consents) {
      say("Your wallet asks you to sign the revocation of your consent to " + c.grantee.name + "…");
      revocations.push({ consent: c.terms, signature: await signTyped(c.revoke_typed_data) });
    }
    say("Asking for the erasure of your records…");
    try {
      state.erasure = await api("POST", "/erasure", { revocations });
    } catch (exc) {
      if (exc instanceof ApiError && exc.body && Array.isArray(exc.body.custodians)) {
        state.erasure = exc.body;
        await refresh();
      }
      throw exc;
    }
    await refresh();
    say("Your erasure request was answered; see what happened under “Erase your records”.");
    $("erasure-title").focus();
  }

  const ERASURE_STATUS = {
    erased: "your records there are erased",
    queued: "your records there are destroyed; the ledger entries saying so are on their way",
    refused: "it refused, so nothing was erased there",
    unreachable: "it could not be reached, so nothing was erased there",
  };

  function custodianOutcome(c) {
    const parts = [c.name + ": " + (ERASURE_STATUS[c.status] || c.status) + "."];
    if (c.error) parts.push(" " + c.error + ".");
    const a = c.answer;
    if (a && Array.isArray(a.records)) {
      const records = a.records.map((rec) => "Record " + shortId(rec.record) + " " + (rec.tombstone === "on chain"
        ? "erased, recorded on the ledger" : "destroyed, its ledger entry " + rec.tombstone));
      parts.push(" " + (records.length ? records.join("; ") : "No record was held there") + ".");
    }
    if (a && Array.isArray(a.consents) && a.consents.length) {
      parts.push(" " + revokedText(a.consents.map((k) => k.revocation)));
    }
    return el("li", {}, parts.join(""));
  }

  function revokedText(statuses) {
    return (statuses.length === 1 ? "1 consent" : statuses.length + " consents") + " revoked (" + statuses.join(", ") + ").";
  }

  function erasureOutcome(answer) {
    const custodians = answer.custodians || [];
    const box = el("div", { class: "outcome" }, el("h3", {}, "What your erasure request did"));
    if (custodians.length) {
      box.append(el("ul", {}, custodians.map(custodianOutcome)));
    } else {
      const revoked = (answer.revocations || []).map((r) => (r.revocation && r.revocation.status) || "sent");
      box.append(el("p", {}, "No organisation held a record about you." + (revoked.length ? " " + revokedText(revoked) : "")));
    }
    return box;
  }

  const ANSWERED = {
    granted: () => "you approved it",
    denied: () => "you refused it",
    expired: (r) => "it expired unanswered (" + r.expires_at_text + ")",
    revoked: () => "you approved it, then revoked the consent",
  };

  function answeredRequest(r) {
    const outcome = (ANSWERED[r.state] || (() => r.state))(r);
    return el("li", { "data-state": r.state }, r.requester.name + " asked for your " + r.category.name + " on " +
      r.asked_at_text + " (“" + r.reason + "”): " + outcome + ".");
  }

  // ---- start ------------------------------------------------------------------------------------------------

  function start() {
    $("connect").addEventListener("click", () => act($("signed-out"), signIn));
    $("sign-out").addEventListener("click", () => act($("account"), signOut));
    for (const id of ["pending-title", "consents-title", "erasure-title"]) $(id).setAttribute("tabindex", "-1");
    if (!window.ethereum) $("no-wallet").hidden = false;
    if (window.ethereum && typeof window.ethereum.on === "function") {
      window.ethereum.on("accountsChanged", (accounts) => {
        if (state.subject && accounts && accounts.length && accounts[0].toLowerCase() !== state.subject.toLowerCase()) {
          say("Your wallet switched to another account. This page still shows " + state.subject +
            "; sign out and sign in again to see the other account.");
        }
      });
    }
    api("GET", "/overview").then((overview) => {
      state.overview = overview;
      state.subject = overview.subject;
      render(overview);
    }, (exc) => {
      if (!(exc instanceof ApiError && exc.status === 401)) fail(exc);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
