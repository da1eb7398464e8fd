// door.js: the door, for staff on a phone. A scan (the camera through
// BarcodeDetector where the browser has it, else a code typed or pasted,
// or read by a keyboard-wedge scanner that types it and presses Enter) is
// sent to POST /v1/checkin with the gate's name, and the answer fills the
// screen: green to let in, red with the reason to refuse.

import { api } from "./api.js";
import { h, field, input, button, status } from "./dom.js";

const gateKey = "onsale.console.gate";
const sameCodePauseMs = 3000;
const scanEveryMs = 250;

// reasons: what a refusal means at the door (README "At the door").
const reasons = {
  already_checked_in: (p) => `Already checked in${p.first_gate ? " at " + p.first_gate : ""}${p.first_checked_in_at ? ", " + p.first_checked_in_at.replace("T", " ").replace(/\.\d+Z$/, " UTC") : ""}`,
  ticket_revoked: () => "Ticket revoked: refunded, or an old copy of a re-issued ticket",
  exchange_in_progress: () => "Not yet: this ticket's exchange from another session is still being settled",
  invalid_ticket: () => "Not a ticket of this server",
  forbidden: () => "Not for this entrance: another sale",
  invalid_request: (p) => "Check the scanner's settings: " + (p.detail || "gate missing"),
  unknown_ticket: () => "No such ticket",
  rate_limited: () => "Busy: scan again",
  overloaded: () => "Busy: scan again",
  unavailable: () => "Server busy or restarting: scan again",
  network: () => "No answer from the server: scan again",
};

export async function render(main, app) {
  const gate = input({ name: "gate", required: true, value: sessionStorage.getItem(gateKey) || "", autocomplete: "on", maxlength: 64 });
  const code = input({ name: "code", required: true, autocapitalize: "characters", spellcheck: "false", inputmode: "text" });
  const answer = h("div", { id: "door-answer", role: "status", "aria-live": "assertive" });
  const video = h("video", { id: "door-video", playsinline: true, muted: true, hidden: true, "aria-label": "Camera view" });
  const camMsg = status();
  const hasDetector = "BarcodeDetector" in window && navigator.mediaDevices?.getUserMedia;
  const camButton = hasDetector ? button("Scan with the camera", () => toggleCamera(), { id: "camera" }) : null;
  const form = h("form", { class: "panel door", id: "door-form", novalidate: true },
    h("div", { class: "row" }, field("Gate", gate, { hint: "where you stand, such as north-3" })),
    field(app.role === "admin" ? "Ticket code (or ticket id)" : "Ticket code", code, { hint: "scan, type or paste the code, then Enter" }),
    h("div", { class: "row" }, h("button", { type: "submit", id: "check-in", text: "Check in" }), camButton),
    hasDetector ? null : h("p", { class: "unavailable", text: "This browser has no barcode detector: type or paste the code, or use a scanner that types it." }),
    camMsg, video);
  main.append(h("h2", { text: "Door" }), form, answer);
  gate.addEventListener("change", () => sessionStorage.setItem(gateKey, gate.value.trim()));

  let busy = false, lastCode = "", lastAt = 0;
  async function check(text) {
    const value = text.trim().replace(/\s+/g, "");
    if (value === "" || busy) return;
    if (gate.value.trim() === "") {
      show(false, "Set the gate first", "");
      gate.focus();
      return;
    }
    busy = true;
    sessionStorage.setItem(gateKey, gate.value.trim());
    const body = app.role === "admin" && value.includes(".") ? { ticket: value } : { code: value, gate: gate.value.trim() };
    const r = await api("POST", "/v1/checkin", { body });
    busy = false;
    if (r.ok && r.data.admitted) {
      const t = r.data;
      show(true, "ADMIT", `${t.tier_name || t.tier} · ticket ${t.ticket_index + 1} of order ${t.order_id}${t.holder ? " · " + t.holder : ""}`);
    } else {
      const p = r.problem || {};
      show(false, "REFUSE", (reasons[p.code] || (() => p.detail || "HTTP " + r.status))(p));
    }
    code.value = "";
    code.focus();
  }
  function show(ok, head, reason) {
    answer.className = ok ? "admit" : "refuse";
    answer.dataset.result = ok ? "admit" : "refuse";
    answer.replaceChildren(h("strong", { text: head }), h("span", { text: reason }));
    if (navigator.vibrate) navigator.vibrate(ok ? 80 : [200, 80, 200]);
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    check(code.value);
  });

  // The camera: BarcodeDetector on the video's frames a few times a
  // second; the same code is not sent twice within a few seconds.
  let stream = null, timer = null;
  async function toggleCamera() {
    if (stream) return stopCamera();
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    } catch (e) {
      camMsg.textContent = "No camera: " + e.message;
      return;
    }
    const detector = new BarcodeDetector({ formats: ["qr_code"] });
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    camButton.textContent = "Stop the camera";
    timer = setInterval(async () => {
      if (busy || video.readyState < 2) return;
      const found = await detector.detect(video).catch(() => []);
      const text = found[0]?.rawValue;
      if (!text) return;
      const now = Date.now();
      if (text === lastCode && now - lastAt < sameCodePauseMs) return;
      lastCode = text;
      lastAt = now;
      check(text);
    }, scanEveryMs);
  }
  function stopCamera() {
    clearInterval(timer);
    stream?.getTracks().forEach((t) => t.stop());
    stream = null;
    video.hidden = true;
    if (camButton) camButton.textContent = "Scan with the camera";
  }
  (gate.value ? code : gate).focus();
  return stopCamera;
}
