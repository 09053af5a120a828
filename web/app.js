// Matting page: pick an image and a trimap (automatic, uploaded or painted), send them to
// POST api/matte with format=json, and show input | trimap | alpha | result. The automatic
// trimap (POST api/trimap) is shown first and is where painting starts from.
// Plain browser JavaScript, no build step and no third-party code.
"use strict";

const TRIMAP_BG = 0;
const TRIMAP_UNKNOWN = 128;
const TRIMAP_FG = 255;
// Overlay colours over the image while painting: [r, g, b, alpha 0-255].
const OVERLAY = {
  [TRIMAP_FG]: [34, 197, 94, 120],
  [TRIMAP_UNKNOWN]: [250, 184, 20, 150],
  [TRIMAP_BG]: [30, 35, 50, 150],
};
const MAX_UNDO = 40;

const $ = (id) => document.getElementById(id);

const state = {
  limits: null,
  image: null, // {file, url, width, height} or null; width 0 when the browser cannot show it
  trimapFile: null,
  trimapMode: "auto",
  auto: null, // {imageUrl, url, blob, data: Uint8Array or null} of the automatic trimap
  plateFile: null,
  paint: null, // {data: Uint8Array(width*height), undo: [], stroke: null}
  brushValue: TRIMAP_FG,
  backgroundFile: null,
  busy: false,
  hasResult: false,
  resultUrls: [],
  trimapPreviewUrl: null,
};

// ---------------------------------------------------------------- server status

async function checkHealth() {
  const health = $("health");
  try {
    const response = await fetch("api/health");
    const body = await response.json();
    state.limits = body.limits;
    if (!body.auto_trimap) {
      // A server without automatic trimaps needs one from the user.
      $("tab-auto").hidden = true;
      if (state.trimapMode === "auto") setTrimapMode("upload");
    }
    const model = body.model || {};
    health.textContent = `checkpoint step ${body.step} · ${model.encoder || "model"}`;
    health.title = body.checkpoint;
    health.className = "health ok";
    const megabytes = body.limits.max_upload_bytes / 1048576;
    const megapixels = body.limits.max_pixels / 1e6;
    $("image-info").textContent =
      `PNG, JPEG, WebP, BMP or TIFF; up to ${+megabytes.toFixed(1)} MB` +
      ` and ${+megapixels.toFixed(1)} megapixels.`;
  } catch (error) {
    health.textContent = "server unreachable";
    health.className = "health down";
  }
}

// ---------------------------------------------------------------- messages and progress

function setStatus(text) {
  $("status").textContent = text;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setProgress(fraction, text) {
  const bar = $("progress");
  bar.hidden = false;
  bar.classList.toggle("indeterminate", fraction === null);
  $("progress-bar").style.width = fraction === null ? "" : `${Math.round(fraction * 100)}%`;
  setStatus(text);
}

function hideProgress() {
  $("progress").hidden = true;
}

function formatBytes(bytes) {
  return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

// Refuse an over-large file here rather than after uploading it.
function tooLarge(field, file) {
  if (state.limits && file.size > state.limits.max_upload_bytes) {
    showError(
      `${field}: file is ${formatBytes(file.size)}; the limit is ` +
        `${formatBytes(state.limits.max_upload_bytes)}`,
    );
    return true;
  }
  return false;
}

function updateRunButton() {
  const trimapReady = {
    auto: true,
    paint: state.paint !== null,
    upload: !!state.trimapFile,
    plate: !!state.plateFile,
  }[state.trimapMode];
  const backgroundReady = backgroundMode() !== "image" || !!state.backgroundFile;
  $("run").disabled = state.busy || !state.image || !trimapReady || !backgroundReady;
}

function markStale() {
  if (state.hasResult) {
    document.querySelector(".results").classList.add("stale");
    setStatus("Settings changed: run again to update the result.");
  }
  updateRunButton();
}

// ---------------------------------------------------------------- image panels

function showInPanel(id, url) {
  const img = $(id);
  const empty = img.parentElement.querySelector(".empty");
  if (!url) {
    img.hidden = true;
    img.removeAttribute("src");
    empty.hidden = false;
    return;
  }
  img.onload = () => {
    // Small images are shown enlarged; keep their pixels crisp.
    img.classList.toggle("small", img.naturalWidth * 2 <= img.clientWidth);
  };
  img.src = url;
  img.hidden = false;
  empty.hidden = true;
}

function clearResults() {
  for (const url of state.resultUrls) URL.revokeObjectURL(url);
  state.resultUrls = [];
  state.hasResult = false;
  document.querySelector(".results").classList.remove("stale");
  showInPanel("view-alpha", null);
  showInPanel("view-result", null);
  for (const id of ["download-rgba", "download-composite", "download-alpha", "download-mask"]) {
    const link = $(id);
    link.removeAttribute("href");
    link.classList.add("disabled");
    link.setAttribute("aria-disabled", "true");
  }
  $("result-meta").textContent = "";
}

// ---------------------------------------------------------------- inputs

function setImage(file) {
  showError("");
  if (!file || tooLarge("image", file)) return;
  if (state.image) URL.revokeObjectURL(state.image.url);
  const url = URL.createObjectURL(file);
  state.image = { file, url, width: 0, height: 0 };
  state.paint = null;
  if (state.auto && state.auto.url) URL.revokeObjectURL(state.auto.url);
  state.auto = null;
  clearResults();
  requestAutoTrimap(file, url);
  const probe = new Image();
  probe.onload = () => {
    if (!state.image || state.image.url !== url) return;
    state.image.width = probe.naturalWidth;
    state.image.height = probe.naturalHeight;
    $("image-info").textContent =
      `${file.name}: ${probe.naturalWidth}×${probe.naturalHeight} px, ${formatBytes(file.size)}`;
    resetPainting();
    showInPanel("view-input", url);
    $("editor-image").src = url;
    layoutEditor();
    updateTrimapView();
    updateRunButton();
    setStatus(
      {
        auto: "Run, or correct the automatic trimap with Paint.",
        paint: "Paint the trimap, then run.",
        upload: "Now add a trimap.",
        plate: "Now add the plate.",
      }[state.trimapMode],
    );
  };
  probe.onerror = () => {
    // The server may still read formats a browser cannot show (TIFF); only painting needs one.
    if (!state.image || state.image.url !== url) return;
    showInPanel("view-input", null);
    $("image-info").textContent = `${file.name}: this browser cannot preview it`;
    updateTrimapView();
    updateRunButton();
  };
  probe.src = url;
  updateRunButton();
}

function setTrimapFile(file) {
  showError("");
  if (!file || tooLarge("trimap", file)) return;
  state.trimapFile = file;
  if (state.trimapMode !== "upload") setTrimapMode("upload");
  updateTrimapView();
  markStale();
}

function setPlateFile(file) {
  showError("");
  if (!file || tooLarge("plate", file)) return;
  state.plateFile = file;
  updateTrimapView();
  markStale();
}

function setTrimapMode(mode) {
  state.trimapMode = mode;
  for (const name of ["auto", "upload", "paint", "plate"]) {
    $(`tab-${name}`).setAttribute("aria-selected", String(mode === name));
    $(`panel-${name}`).hidden = mode !== name;
  }
  $("editor-card").hidden = mode !== "paint" || !state.paint;
  layoutEditor();
  updateTrimapView();
  markStale();
}

function updateTrimapView() {
  if (state.trimapPreviewUrl) URL.revokeObjectURL(state.trimapPreviewUrl);
  state.trimapPreviewUrl = null;
  if (state.trimapMode === "auto") {
    showInPanel("view-trimap", state.auto && state.auto.url);
    return;
  }
  if (state.trimapMode !== "paint") {
    // The plate is shown where the trimap would be: it is what guides the model.
    const file = state.trimapMode === "plate" ? state.plateFile : state.trimapFile;
    if (file) state.trimapPreviewUrl = URL.createObjectURL(file);
    showInPanel("view-trimap", state.trimapPreviewUrl);
    return;
  }
  if (!state.paint) {
    showInPanel("view-trimap", null);
    return;
  }
  paintedTrimapBlob().then((blob) => {
    if (state.trimapMode !== "paint") return;
    if (state.trimapPreviewUrl) URL.revokeObjectURL(state.trimapPreviewUrl);
    state.trimapPreviewUrl = URL.createObjectURL(blob);
    showInPanel("view-trimap", state.trimapPreviewUrl);
  });
}

function backgroundMode() {
  return document.querySelector('input[name="bg-mode"]:checked').value;
}

function onBackgroundModeChange() {
  $("bg-file").hidden = backgroundMode() !== "image";
  markStale();
}

// ---------------------------------------------------------------- automatic trimap

async function requestAutoTrimap(file, imageUrl) {
  if ($("tab-auto").hidden) return;
  const form = new FormData();
  form.append("image", file, file.name);
  $("auto-info").textContent = "Making the automatic trimap…";
  let response = null;
  try {
    response = await fetch("api/trimap", { method: "POST", body: form });
  } catch (error) {
    response = null;
  }
  if (!state.image || state.image.url !== imageUrl) return; // another image was chosen
  if (!response || !response.ok) {
    let message = response ? `server answered HTTP ${response.status}` : "network error";
    try {
      message = (await response.json()).error || message;
    } catch (error) {
      // keep the status line
    }
    $("auto-info").textContent = `No automatic trimap: ${message}. Run still makes one.`;
    return;
  }
  const blob = await response.blob();
  if (!state.image || state.image.url !== imageUrl) return;
  state.auto = { imageUrl, blob, url: URL.createObjectURL(blob), data: null };
  $("auto-info").textContent =
    "Proposed from the image alone (shown under Trimap). Run as it is, or switch to Paint " +
    "to correct it.";
  updateTrimapView();
  try {
    state.auto.data = await trimapLevels(blob);
  } catch (error) {
    state.auto.data = null; // the browser cannot decode it; painting starts from background
  }
  seedPaintFromAuto();
}

// Grey levels of a trimap PNG, one byte per pixel (its red channel; the PNG is grey).
async function trimapLevels(blob) {
  const bitmap = await createImageBitmap(blob, {
    colorSpaceConversion: "none",
    premultiplyAlpha: "none",
  });
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const levels = new Uint8Array(bitmap.width * bitmap.height);
  for (let i = 0; i < levels.length; i++) {
    const value = rgba[i * 4];
    levels[i] = value < 64 ? TRIMAP_BG : value > 191 ? TRIMAP_FG : TRIMAP_UNKNOWN;
  }
  return levels;
}

// Painting starts from the automatic trimap, unless the user has painted already.
function seedPaintFromAuto() {
  const paint = state.paint;
  const auto = state.auto;
  if (!paint || !auto || !auto.data || auto.imageUrl !== state.image.url) return;
  if (paint.undo.length || paint.stroke || auto.data.length !== paint.data.length) return;
  paint.data.set(auto.data);
  renderOverlay(0, 0, state.image.width - 1, state.image.height - 1);
  if (state.trimapMode === "paint") updateTrimapView();
}

// ---------------------------------------------------------------- trimap painting

function resetPainting() {
  const { width, height } = state.image;
  if (!width) return;
  state.paint = { data: new Uint8Array(width * height), undo: [], stroke: null };
  const canvas = $("editor-canvas");
  canvas.width = width;
  canvas.height = height;
  const size = $("brush-size");
  size.max = String(Math.max(50, Math.round(Math.max(width, height) / 3)));
  setBrushSize(Math.max(2, Math.round(Math.min(width, height) / 20)));
  renderOverlay(0, 0, width - 1, height - 1);
  $("editor-card").hidden = state.trimapMode !== "paint";
  updateUndoButtons();
  seedPaintFromAuto();
}

function setBrushSize(value) {
  const input = $("brush-size");
  const clamped = Math.min(Number(input.max), Math.max(Number(input.min), Math.round(value)));
  input.value = String(clamped);
  $("brush-size-value").textContent = `${clamped} px`;
}

function setBrush(value) {
  state.brushValue = value;
  for (const button of document.querySelectorAll(".brush")) {
    button.setAttribute("aria-checked", String(Number(button.dataset.value) === value));
  }
}

// Fit the painter in the column and in half the window height, so the panels stay in view.
function layoutEditor() {
  const editor = $("editor");
  if (!state.image || !state.image.width || $("editor-card").hidden) return;
  const available = editor.parentElement.clientWidth;
  const maxHeight = Math.max(240, window.innerHeight * 0.5);
  const scale = Math.min(available / state.image.width, maxHeight / state.image.height);
  editor.style.width = `${Math.floor(state.image.width * scale)}px`;
  $("editor-image").style.imageRendering = scale >= 3 ? "pixelated" : "auto";
}

function renderOverlay(x0, y0, x1, y1) {
  const { width } = state.image;
  const data = state.paint.data;
  const w = x1 - x0 + 1;
  const h = y1 - y0 + 1;
  const pixels = new ImageData(w, h);
  const out = pixels.data;
  for (let y = 0; y < h; y++) {
    let source = (y0 + y) * width + x0;
    let target = y * w * 4;
    for (let x = 0; x < w; x++, source++, target += 4) {
      const colour = OVERLAY[data[source]];
      out[target] = colour[0];
      out[target + 1] = colour[1];
      out[target + 2] = colour[2];
      out[target + 3] = colour[3];
    }
  }
  $("editor-canvas").getContext("2d").putImageData(pixels, x0, y0);
}

// Set every pixel whose centre lies within the brush disc; exact values, no anti-aliasing.
function stamp(cx, cy) {
  const { width, height } = state.image;
  const stroke = state.paint.stroke;
  const radius = Math.max(Number($("brush-size").value) / 2, 0.71);
  const x0 = Math.max(0, Math.floor(cx - radius));
  const x1 = Math.min(width - 1, Math.ceil(cx + radius));
  const y0 = Math.max(0, Math.floor(cy - radius));
  const y1 = Math.min(height - 1, Math.ceil(cy + radius));
  if (x0 > x1 || y0 > y1) return;
  const r2 = radius * radius;
  const data = state.paint.data;
  for (let y = y0; y <= y1; y++) {
    const dy = y + 0.5 - cy;
    for (let x = x0; x <= x1; x++) {
      const dx = x + 0.5 - cx;
      if (dx * dx + dy * dy <= r2) data[y * width + x] = stroke.value;
    }
  }
  stroke.x0 = Math.min(stroke.x0, x0);
  stroke.y0 = Math.min(stroke.y0, y0);
  stroke.x1 = Math.max(stroke.x1, x1);
  stroke.y1 = Math.max(stroke.y1, y1);
  renderOverlay(x0, y0, x1, y1);
}

function imagePoint(event) {
  const rect = $("editor-canvas").getBoundingClientRect();
  return {
    x: ((event.clientX - rect.left) * state.image.width) / rect.width,
    y: ((event.clientY - rect.top) * state.image.height) / rect.height,
  };
}

function strokeTo(point) {
  const stroke = state.paint.stroke;
  const dx = point.x - stroke.x;
  const dy = point.y - stroke.y;
  const spacing = Math.max(0.5, Number($("brush-size").value) / 4);
  const steps = Math.max(1, Math.ceil(Math.hypot(dx, dy) / spacing));
  for (let i = 1; i <= steps; i++) stamp(stroke.x + (dx * i) / steps, stroke.y + (dy * i) / steps);
  stroke.x = point.x;
  stroke.y = point.y;
}

function moveCursor(event) {
  const canvas = $("editor-canvas");
  const rect = canvas.getBoundingClientRect();
  const cursor = $("brush-cursor");
  const diameter = (Number($("brush-size").value) * rect.width) / state.image.width;
  cursor.hidden = false;
  cursor.style.width = cursor.style.height = `${Math.max(4, diameter)}px`;
  cursor.style.left = `${event.clientX - rect.left}px`;
  cursor.style.top = `${event.clientY - rect.top}px`;
}

function onPointerDown(event) {
  if (!state.paint || event.button !== 0) return;
  event.preventDefault();
  event.target.setPointerCapture(event.pointerId);
  const point = imagePoint(event);
  state.paint.stroke = {
    value: state.brushValue,
    before: state.paint.data.slice(),
    x: point.x,
    y: point.y,
    x0: Infinity,
    y0: Infinity,
    x1: -Infinity,
    y1: -Infinity,
  };
  stamp(point.x, point.y);
}

function onPointerMove(event) {
  if (!state.paint) return;
  moveCursor(event);
  if (state.paint.stroke) strokeTo(imagePoint(event));
}

function onPointerUp() {
  const paint = state.paint;
  if (!paint || !paint.stroke) return;
  const stroke = paint.stroke;
  paint.stroke = null;
  if (stroke.x0 > stroke.x1) return;
  pushUndo(stroke.before, stroke.x0, stroke.y0, stroke.x1, stroke.y1);
  updateTrimapView();
  markStale();
}

// Keep only the changed rectangle of the old trimap, so undo stays cheap on big images.
function pushUndo(before, x0, y0, x1, y1) {
  const { width } = state.image;
  const w = x1 - x0 + 1;
  const saved = new Uint8Array(w * (y1 - y0 + 1));
  for (let y = y0; y <= y1; y++) {
    saved.set(before.subarray(y * width + x0, y * width + x1 + 1), (y - y0) * w);
  }
  state.paint.undo.push({ x0, y0, x1, y1, saved });
  if (state.paint.undo.length > MAX_UNDO) state.paint.undo.shift();
  updateUndoButtons();
}

function undo() {
  const paint = state.paint;
  if (!paint || !paint.undo.length || paint.stroke) return;
  const { x0, y0, x1, y1, saved } = paint.undo.pop();
  const { width } = state.image;
  const w = x1 - x0 + 1;
  for (let y = y0; y <= y1; y++) {
    paint.data.set(saved.subarray((y - y0) * w, (y - y0 + 1) * w), y * width + x0);
  }
  renderOverlay(x0, y0, x1, y1);
  updateUndoButtons();
  updateTrimapView();
  markStale();
}

function clearPainting() {
  const paint = state.paint;
  if (!paint) return;
  const { width, height } = state.image;
  pushUndo(paint.data.slice(), 0, 0, width - 1, height - 1);
  paint.data.fill(TRIMAP_BG);
  renderOverlay(0, 0, width - 1, height - 1);
  updateTrimapView();
  markStale();
}

function updateUndoButtons() {
  $("undo").disabled = !state.paint || !state.paint.undo.length;
  $("clear").disabled = !state.paint;
}

// The painted trimap as a PNG with grey levels {0, 128, 255} (opaque, so no premultiplication).
function paintedTrimapBlob() {
  const { width, height } = state.image;
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const pixels = new ImageData(width, height);
  const out = pixels.data;
  const data = state.paint.data;
  for (let i = 0, j = 0; i < data.length; i++, j += 4) {
    out[j] = out[j + 1] = out[j + 2] = data[i];
    out[j + 3] = 255;
  }
  canvas.getContext("2d").putImageData(pixels, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// ---------------------------------------------------------------- running

function base64ToBlob(text) {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: "image/png" });
}

async function buildForm() {
  const form = new FormData();
  form.append("image", state.image.file, state.image.file.name);
  // Automatic: no trimap field, and the server makes the same trimap it proposed.
  if (state.trimapMode === "paint") {
    form.append("trimap", await paintedTrimapBlob(), "trimap.png");
  } else if (state.trimapMode === "plate") {
    form.append("plate", state.plateFile, state.plateFile.name);
  } else if (state.trimapMode === "upload") {
    form.append("trimap", state.trimapFile, state.trimapFile.name);
  }
  const mode = backgroundMode();
  if (mode === "colour") form.append("background", $("bg-colour").value);
  if (mode === "image") form.append("background_image", state.backgroundFile);
  form.append("mask_threshold", $("threshold").value);
  form.append("format", "json");
  return form;
}

async function run() {
  if ($("run").disabled) return;
  showError("");
  state.busy = true;
  updateRunButton();
  const form = await buildForm();
  const stem = state.image.file.name.replace(/\.[^.]*$/, "") || "image";
  const background = backgroundMode();
  const xhr = new XMLHttpRequest();
  let timer = null;
  const started = performance.now();
  const waiting = () =>
    setProgress(null, `Matting on the server… ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const finish = () => {
    clearInterval(timer);
    hideProgress();
    state.busy = false;
    updateRunButton();
  };
  xhr.upload.onprogress = (event) => {
    if (event.lengthComputable) {
      setProgress(event.loaded / event.total, `Uploading… ${Math.round((100 * event.loaded) / event.total)} %`);
    }
  };
  xhr.upload.onload = () => {
    waiting();
    timer = setInterval(waiting, 100);
  };
  xhr.onload = () => {
    finish();
    let body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch (error) {
      body = null;
    }
    if (xhr.status !== 200 || !body || !body.outputs) {
      const message = body && body.error ? body.error : `server answered HTTP ${xhr.status}`;
      showError(message);
      setStatus("Failed.");
      return;
    }
    showResult(body, stem, background);
  };
  xhr.onerror = () => {
    finish();
    showError("network error: is the server still running?");
    setStatus("Failed.");
  };
  xhr.open("POST", "api/matte");
  setProgress(0, "Uploading…");
  xhr.send(form);
}

function showResult(body, stem, background) {
  clearResults();
  const urls = {};
  for (const [name, data] of Object.entries(body.outputs)) {
    urls[name] = URL.createObjectURL(base64ToBlob(data));
    state.resultUrls.push(urls[name]);
  }
  state.hasResult = true;
  if (urls.trimap) showInPanel("view-trimap", urls.trimap);
  showInPanel("view-alpha", urls.soft_mask);
  showInPanel("view-result", urls.composite);
  const links = {
    "download-rgba": ["rgba", `${stem}-rgba.png`],
    "download-composite": ["composite", `${stem}-composite.png`],
    "download-alpha": ["alpha", `${stem}-alpha.png`],
    "download-mask": ["mask", `${stem}-mask.png`],
  };
  for (const [id, [name, filename]] of Object.entries(links)) {
    const link = $(id);
    link.href = urls[name];
    link.download = filename;
    link.classList.remove("disabled");
    link.removeAttribute("aria-disabled");
  }
  $("download-composite").hidden = background === "transparent";
  $("result-meta").textContent =
    `${body.width}×${body.height} px · ${body.seconds.toFixed(2)} s on the server · ` +
    `mask at alpha ≥ ${Number(body.mask_threshold).toFixed(2)}`;
  setStatus("Done.");
}

// ---------------------------------------------------------------- wiring

function onKey(event) {
  const typing = event.target instanceof HTMLInputElement && event.target.type !== "range";
  if (typing || state.trimapMode !== "paint" || !state.paint) return;
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo();
  } else if (event.key === "[" || event.key === "]") {
    const size = Number($("brush-size").value);
    const step = Math.max(1, Math.round(size * 0.15));
    setBrushSize(event.key === "[" ? size - step : size + step);
  }
}

function init() {
  $("image-file").addEventListener("change", (e) => setImage(e.target.files[0]));
  $("trimap-file").addEventListener("change", (e) => setTrimapFile(e.target.files[0]));
  $("tab-auto").addEventListener("click", () => setTrimapMode("auto"));
  $("plate-file").addEventListener("change", (e) => setPlateFile(e.target.files[0]));
  $("tab-upload").addEventListener("click", () => setTrimapMode("upload"));
  $("tab-paint").addEventListener("click", () => setTrimapMode("paint"));
  $("tab-plate").addEventListener("click", () => setTrimapMode("plate"));
  for (const button of document.querySelectorAll(".brush")) {
    button.addEventListener("click", () => setBrush(Number(button.dataset.value)));
  }
  $("brush-size").addEventListener("input", (e) => setBrushSize(Number(e.target.value)));
  $("undo").addEventListener("click", undo);
  $("clear").addEventListener("click", clearPainting);
  for (const radio of document.querySelectorAll('input[name="bg-mode"]')) {
    radio.addEventListener("change", onBackgroundModeChange);
  }
  $("bg-colour").addEventListener("input", () => {
    document.querySelector('input[name="bg-mode"][value="colour"]').checked = true;
    onBackgroundModeChange();
  });
  $("bg-file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    showError("");
    state.backgroundFile = file && !tooLarge("background_image", file) ? file : null;
    markStale();
  });
  $("threshold").addEventListener("input", (e) => {
    $("threshold-value").textContent = Number(e.target.value).toFixed(2);
    markStale();
  });
  $("run").addEventListener("click", run);

  const canvas = $("editor-canvas");
  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("pointermove", onPointerMove);
  canvas.addEventListener("pointerup", onPointerUp);
  canvas.addEventListener("pointercancel", onPointerUp);
  canvas.addEventListener("pointerleave", () => {
    $("brush-cursor").hidden = true;
  });
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", layoutEditor);

  setBrush(TRIMAP_FG);
  checkHealth();
}

init();
