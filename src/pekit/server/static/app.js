// pekit web page: sign in with an API key, introduce concepts (photos + a drawn box each),
// recognize / ask about a new photo, list, edit (rename, context, one more photo) and forget
// concepts. Plain JS, no network but this server.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "pekit.key";
let boxes = [];  // per selected photo: [x0, y0, x1, y1] in the photo's pixels, or null
let signedIn = false;
let session = 0;  // bumped at sign-out: an answer to a request of an earlier session is dropped

function key() { return sessionStorage.getItem(KEY); }

// the request's answer, or an error; `null` when the page was signed out meanwhile (the next
// person on this device must not see it): callers stop there
async function api(method, path, body) {
  const mine = session;
  const headers = { Authorization: "Bearer " + key() };
  if (body !== undefined && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body });
  const data = await res.json().catch(() => ({}));
  if (mine !== session) throw new Gone();
  if (!res.ok) {
    const msg = (data.error && data.error.message) || res.statusText;
    const err = new Error(pageWords(msg, res.status));
    err.status = res.status;
    if (res.status === 401 && signedIn) {  // revoked while signed in: nothing works now; the sign-in box says why
      signOut(err.message);
      throw new Gone();
    }
    throw err;
  }
  return data;
}

class Gone extends Error {}  // signed out while the request ran: nothing to show, nobody to tell

function shown(err, id) {  // an error in a status line, unless it is from an earlier session
  if (!(err instanceof Gone)) status(id, err.message, true);
}

// the API's advice in the words of this page (its form fields and buttons, not curl's)
function pageWords(message, code) {
  if (code === 401) return message.replace(/;.*$/, "") + ": sign in with a valid key (the server's operator makes them)";
  return message
    .replace("send the form field replace=true to overwrite it", "tick \"Replace\" to overwrite it")
    .replace(/\(add more later with POST [^)]*\)/, "(add more later: Edit, then Add photo)");
}

function status(id, text, isError) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

async function busy(button, work) {
  button.disabled = true;
  try { await work(); } finally { button.disabled = false; }
}

// ---- sign in ---------------------------------------------------------------------------
async function signIn(token) {
  sessionStorage.setItem(KEY, token);
  try {
    const me = await api("GET", "/v1/me");
    $("who").textContent = "signed in as " + me.user;
    $("signin-box").hidden = true;
    $("app").hidden = false;
    $("signout").hidden = false;
    signedIn = true;
    status("signin-status", "");
    await refreshConcepts();
  } catch (err) {
    if (err instanceof Gone) return;  // signed out (or in again) meanwhile
    sessionStorage.removeItem(KEY);
    status("signin-status", err.message, true);
  }
}

function signOut(message) {
  signedIn = false;
  session += 1;
  sessionStorage.removeItem(KEY);
  $("who").textContent = "not signed in";
  $("app").hidden = true;
  $("signin-box").hidden = false;
  $("signout").hidden = true;
  $("key").value = "";
  resetApp();  // the next person to sign in on this device sees nothing of this one's
  status("signin-status", typeof message === "string" ? message : "", typeof message === "string");
}

function resetApp() {
  $("introduce-form").reset();
  $("ask-form").reset();
  $("boxes").replaceChildren();
  boxes = [];
  clearResult();
  $("concepts").replaceChildren();
  for (const id of ["introduce-status", "ask-status", "concepts-status"]) status(id, "");
}

function clearResult() {
  $("result").hidden = true;
  $("result-img").removeAttribute("src");
  $("detections").replaceChildren();
  $("answer").textContent = "";
  $("prompt").textContent = "";
  $("prompt-box").hidden = true;
}

// ---- drawing a box on each reference photo ----------------------------------------------
function drawBox(canvas, img, box) {
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  if (!box) return;
  const s = canvas.width / img.naturalWidth;
  ctx.lineWidth = Math.max(3, canvas.width / 150);
  ctx.strokeStyle = "#ff2d55";
  ctx.strokeRect(box[0] * s, box[1] * s, (box[2] - box[0]) * s, (box[3] - box[1]) * s);
}

function photoCanvas(file, index) {
  const canvas = document.createElement("canvas");
  canvas.dataset.index = String(index);
  canvas.setAttribute("aria-label", "photo " + (index + 1) + ": drag to draw a box around the object");
  const img = new Image();
  img.onload = () => {
    const scale = Math.min(1, 1200 / img.naturalWidth);
    canvas.width = Math.round(img.naturalWidth * scale);
    canvas.height = Math.round(img.naturalHeight * scale);
    drawBox(canvas, img, null);
    canvas.dataset.ready = "1";
  };
  img.src = URL.createObjectURL(file);
  let start = null;
  const at = (ev) => {  // pointer position in the photo's own pixels
    const r = canvas.getBoundingClientRect();
    const x = (ev.clientX - r.left) / r.width * img.naturalWidth;
    const y = (ev.clientY - r.top) / r.height * img.naturalHeight;
    return [Math.max(0, Math.min(img.naturalWidth, x)), Math.max(0, Math.min(img.naturalHeight, y))];
  };
  canvas.addEventListener("pointerdown", (ev) => {
    start = at(ev);
    canvas.setPointerCapture(ev.pointerId);
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (!start) return;
    const p = at(ev);
    drawBox(canvas, img, [Math.min(start[0], p[0]), Math.min(start[1], p[1]),
                          Math.max(start[0], p[0]), Math.max(start[1], p[1])]);
  });
  canvas.addEventListener("pointerup", (ev) => {
    if (!start) return;
    const p = at(ev);
    const box = [Math.min(start[0], p[0]), Math.min(start[1], p[1]), Math.max(start[0], p[0]), Math.max(start[1], p[1])]
      .map((v) => Math.round(v));
    start = null;
    const big = box[2] - box[0] >= 8 && box[3] - box[1] >= 8;  // a click is not a box
    boxes[index] = big ? box : null;
    drawBox(canvas, img, boxes[index]);
    canvas.dataset.box = big ? box.join(",") : "";
  });
  return canvas;
}

function showPhotos() {
  const files = Array.from($("photos").files);
  boxes = files.map(() => null);
  const holder = $("boxes");
  holder.replaceChildren(...files.map((f, i) => photoCanvas(f, i)));
}

// what introduce's answer warns of, as `pekit introduce` does
function warnings(c) {
  const out = (c.same_pictures || []).map(([i, j]) =>
    `photos ${i} and ${j} are the same picture (a copy adds nothing; photos from other angles do)`);
  const alike = c.most_alike;
  if (alike && alike.over_threshold) {
    out.push(c.kind === "person"
      ? `${c.name} looks much like ${alike.name}, already introduced: the same person under two names? Forget one`
      : `${c.name} looks much like ${alike.name}, already introduced (their parts agree at ` +
        `${alike.agreement.toFixed(2)}): a photo of either, or of a look-alike, may be given either name`);
  }
  return out.length ? ". Note: " + out.join("; ") : "";
}

async function introduce(ev) {
  ev.preventDefault();
  const form = new FormData();
  form.append("name", $("name").value);
  form.append("category", $("category").value);
  form.append("context", $("context").value);
  for (const f of $("photos").files) form.append("photos", f, f.name);
  if (boxes.some((b) => b)) form.append("boxes", JSON.stringify(boxes));
  if ($("replace").checked) form.append("replace", "true");
  status("introduce-status", "introducing…");
  await busy($("introduce"), async () => {
    try {
      const c = await api("POST", "/v1/concepts", form);
      const agree = c.consistency == null ? "" : `; they match one another at ${c.consistency.toFixed(2)}` +
        (c.consistency_low ? " (low: new photos unlike these may be missed; add photos from other angles)" : "");
      status("introduce-status", `introduced ${c.name} from ${c.views} photo(s)${agree}${warnings(c)}`);
      $("introduce-form").reset();
      $("boxes").replaceChildren();
      boxes = [];
      await refreshConcepts();
    } catch (err) { shown(err, "introduce-status"); }
  });
}

// ---- recognize / ask ------------------------------------------------------------------------
function showResult(data) {
  $("result").hidden = false;
  $("result-img").src = data.annotated || "";
  const items = data.detections.map((d) => {
    const li = document.createElement("li");
    li.textContent = `${d.name} (${d.score.toFixed(2)})`;
    li.dataset.box = d.box.map((v) => Math.round(v)).join(",");
    return li;
  });
  if (!items.length) {
    const li = document.createElement("li");
    li.textContent = "none of your concepts found";
    items.push(li);
  }
  $("detections").replaceChildren(...items);
  $("answer").textContent = data.text !== undefined
    ? (data.text || (data.backend === "none" ? "No LVLM is configured on the server; the prompt it would get is below." : ""))
    : "";
  $("prompt").textContent = data.prompt || "";
  $("prompt-label").textContent = data.backend === "none" ? "Prompt an LVLM would get" : "Prompt sent to the LVLM";
  $("prompt-box").hidden = !data.prompt;
}

async function query(kind) {
  const file = $("query").files[0];
  if (!file) { status("ask-status", "choose a photo first", true); return; }
  const form = new FormData();
  form.append("photo", file, file.name);
  if (kind === "ask") {
    const q = $("question").value.trim();
    if (!q) { status("ask-status", "type a question (or use Find my concepts)", true); return; }
    form.append("question", q);
  }
  clearResult();  // an error must not sit above the last photo's result
  status("ask-status", kind === "ask" ? "asking…" : "looking…");
  await busy($(kind), async () => {
    try {
      const data = await api("POST", kind === "ask" ? "/v1/ask" : "/v1/recognize", form);
      showResult(data);
      status("ask-status", data.detections.length ? `found ${data.detections.length}` : "found none");
    } catch (err) { shown(err, "ask-status"); }
  });
}

// ---- list / edit / forget -----------------------------------------------------------------------
function button(text, className, type) {
  const b = document.createElement("button");
  b.type = type || "button";
  b.className = className;
  b.textContent = text;
  return b;
}

// rename, new category or context (PATCH), one more photo (POST .../views) or the last one taken back
// (DELETE .../views/last): what the API offers
function editForm(c) {
  const form = document.createElement("form");
  form.className = "edit";
  form.hidden = true;
  const field = (label, value, max, type) => {
    const l = document.createElement("label");
    l.textContent = label;
    const input = document.createElement("input");
    if (type) input.type = type; else { input.value = value || ""; input.maxLength = max; }
    l.append(input);
    form.append(l);
    return input;
  };
  const name = field("Name", c.name, 200);
  const category = field("Category", c.category, 200);
  const context = field("Context", c.context, 2000);
  const photo = field("Add photo", "", 0, "file");
  photo.accept = "image/*";
  const save = button("Save", "save", "submit");
  // a photo of something else added by mistake: DELETE .../views/last takes the last one back
  const undo = button("Take back the last added photo", "secondary undo-view");
  undo.addEventListener("click", () => busy(undo, async () => {
    try {
      const now = await api("DELETE", "/v1/concepts/" + encodeURIComponent(c.name) + "/views/last");
      await refreshConcepts(`took back the last photo added to ${now.name}: ${now.views} view(s)`);
    } catch (err) { shown(err, "concepts-status"); }
  }));
  form.append(save, undo);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await busy(save, async () => {
      try {
        const change = {};
        if (name.value.trim() !== c.name) change.name = name.value.trim();
        if (category.value !== (c.category || "")) change.category = category.value;
        if (context.value !== (c.context || "")) change.context = context.value;
        if (Object.keys(change).length) {
          const now = await api("PATCH", "/v1/concepts/" + encodeURIComponent(c.name), change);
          Object.assign(c, { name: now.name, category: now.category, context: now.context });  // a retry starts here
        }
        if (photo.files[0]) {
          const body = new FormData();
          body.append("photo", photo.files[0], photo.files[0].name);
          await api("POST", "/v1/concepts/" + encodeURIComponent(c.name) + "/views", body);
        }
        await refreshConcepts(`saved ${c.name}`);
      } catch (err) { shown(err, "concepts-status"); }
    });
  });
  return form;
}

async function refreshConcepts(message) {
  try {
    const list = await api("GET", "/v1/concepts");
    const items = list.map((c) => {
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = `${c.name}${c.category ? " (" + c.category + ")" : ""} — ${c.views} view(s)`
        + (c.context ? ": " + c.context : "");
      const edit = button("Edit", "secondary edit");
      edit.dataset.name = c.name;
      const forget = button("Forget", "secondary forget");
      forget.dataset.name = c.name;
      forget.addEventListener("click", () => forgetConcept(c.name, forget));
      const form = editForm(c);
      edit.addEventListener("click", () => { form.hidden = !form.hidden; });
      li.append(label, edit, forget, form);
      return li;
    });
    $("concepts").replaceChildren(...items);
    const none = list.length ? "" : "no concepts yet: introduce one above";
    status("concepts-status", [message, none].filter(Boolean).join("; "));
  } catch (err) { shown(err, "concepts-status"); }
}

async function forgetConcept(name, button) {
  if (!window.confirm(`Forget ${name}? Its stored views are deleted.`)) return;
  await busy(button, async () => {
    try {
      await api("DELETE", "/v1/concepts/" + encodeURIComponent(name));
      await refreshConcepts(`forgot ${name}`);
    } catch (err) { shown(err, "concepts-status"); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("key").value.trim()); });
  $("signout").addEventListener("click", signOut);
  $("photos").addEventListener("change", showPhotos);
  $("introduce-form").addEventListener("submit", introduce);
  $("recognize").addEventListener("click", () => query("recognize"));
  $("ask-form").addEventListener("submit", (ev) => { ev.preventDefault(); query("ask"); });
  if (key()) signIn(key());
});
