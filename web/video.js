// Video section of the matting page: upload a clip (and optionally its first frame's trimap)
// to POST api/video, poll GET api/jobs/ID for progress, then show and offer the result.
// Plain browser JavaScript, no build step; independent of app.js.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 250;
  let busy = false;

  function showError(message) {
    $("video-error").textContent = message;
    $("video-error").hidden = !message;
  }

  function setProgress(fraction, text) {
    $("video-progress").hidden = false;
    $("video-progress").classList.toggle("indeterminate", fraction === null);
    $("video-progress-bar").style.width = fraction === null ? "" : `${Math.round(fraction * 100)}%`;
    $("video-status").textContent = text;
  }

  function updateButton() {
    $("video-run").disabled = busy || !$("video-file").files.length;
  }

  function resetResult() {
    const video = $("video-result");
    video.hidden = true;
    video.removeAttribute("src");
    const link = $("video-download");
    link.removeAttribute("href");
    link.classList.add("disabled");
    link.setAttribute("aria-disabled", "true");
  }

  function describe(state) {
    if (state.status === "queued") return "Waiting for the server…";
    const total = state.frames_total ? ` of ${state.frames_total}` : "";
    const left =
      state.remaining_seconds === null ? "" : ` · about ${Math.ceil(state.remaining_seconds)} s left`;
    return `Matting frame ${state.frames_done}${total}${left}`;
  }

  async function poll(job) {
    for (;;) {
      const response = await fetch(job.status_url, { cache: "no-store" });
      const state = await response.json();
      if (!response.ok) throw new Error(state.error || `server answered HTTP ${response.status}`);
      if (state.status === "failed") throw new Error(state.error);
      if (state.status === "done") return state;
      setProgress(state.fraction, describe(state));
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  function upload(form) {
    // XMLHttpRequest, not fetch: it reports upload progress.
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) {
          const fraction = event.loaded / event.total;
          setProgress(fraction, `Uploading… ${Math.round(fraction * 100)} %`);
        }
      };
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (error) {
          body = null;
        }
        if (xhr.status === 202 && body && body.id) resolve(body);
        else reject(new Error(body && body.error ? body.error : `server answered HTTP ${xhr.status}`));
      };
      xhr.onerror = () => reject(new Error("network error: is the server still running?"));
      xhr.open("POST", "api/video");
      xhr.send(form);
    });
  }

  async function run() {
    if ($("video-run").disabled) return;
    busy = true;
    updateButton();
    showError("");
    resetResult();
    const file = $("video-file").files[0];
    const form = new FormData();
    form.append("video", file, file.name);
    const trimap = $("video-trimap-file").files[0];
    if (trimap) form.append("trimap", trimap, trimap.name);
    const format = $("video-format").value;
    form.append("format", format);
    if (format === "mp4") form.append("background", $("video-bg-colour").value);
    setProgress(0, "Uploading…");
    try {
      const job = await upload(form);
      setProgress(null, "Waiting for the server…");
      const state = await poll(job);
      const video = $("video-result");
      video.src = job.result_url;
      video.hidden = false;
      const link = $("video-download");
      link.href = job.result_url;
      link.download = state.filename;
      link.classList.remove("disabled");
      link.removeAttribute("aria-disabled");
      $("video-status").textContent =
        `Done: ${state.frames_done} frames in ${state.seconds.toFixed(1)} s on the server.`;
    } catch (error) {
      showError(error.message);
      $("video-status").textContent = "Failed.";
    } finally {
      $("video-progress").hidden = true;
      busy = false;
      updateButton();
    }
  }

  async function showLimits() {
    try {
      const limits = (await (await fetch("api/health")).json()).limits;
      $("video-info").textContent =
        `MP4, MOV, WebM, MKV or AVI; up to ${+(limits.max_video_bytes / 1048576).toFixed(1)} MB,` +
        ` ${+limits.max_video_seconds.toFixed(1)} s and` +
        ` ${+(limits.max_video_pixels / 1e6).toFixed(1)} megapixels a frame. Trimap for the` +
        " first frame (optional; without it every frame gets an automatic one):";
    } catch (error) {
      // app.js already shows that the server is unreachable.
    }
  }

  $("video-file").addEventListener("change", () => {
    showError("");
    updateButton();
  });
  $("video-format").addEventListener("change", () => {
    $("video-bg-colour").hidden = $("video-format").value !== "mp4";
  });
  $("video-run").addEventListener("click", run);
  showLimits();
})();
