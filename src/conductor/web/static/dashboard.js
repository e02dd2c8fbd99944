// The dashboard's only script: the live tail of a job's output on its page. It asks the server
// for the output's end every second while the job is pending or running, then once more.
(function () {
  "use strict";
  const tail = document.getElementById("tail");
  if (!tail) return;
  const errors = document.getElementById("tail-err");
  const status = document.getElementById("tail-status");
  const state = document.getElementById("job-state");
  const url = tail.dataset.url;
  let live = tail.dataset.live === "1";

  async function poll() {
    let answer;
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      answer = await response.json();
      if (!response.ok) {
        status.textContent = answer.detail || "cannot read the output";
        return;
      }
    } catch (e) {
      status.textContent = "the server did not answer; retrying";
      window.setTimeout(poll, 2000);
      return;
    }
    const atBottom = tail.scrollTop + tail.clientHeight >= tail.scrollHeight - 4;
    tail.textContent = answer.stdout === null ? "(no output file yet)" : answer.stdout;
    if (answer.stderr) {
      errors.hidden = false;
      errors.textContent = answer.stderr;
    }
    if (atBottom) tail.scrollTop = tail.scrollHeight;
    if (state && state.textContent !== answer.state) {
      state.textContent = answer.state;
      state.className = "badge state-" + answer.state.toLowerCase();
    }
    if (answer.live) {
      live = true;
      window.setTimeout(poll, 1000);
    } else {
      status.textContent = "The job has ended (" + answer.state + "): the end of its output.";
      if (live) {
        live = false;
        window.setTimeout(function () { window.location.reload(); }, 500);
      }
    }
  }
  poll();
})();
