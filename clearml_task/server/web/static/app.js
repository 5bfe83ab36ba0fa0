// clearml-task web UI: actions through the API (session cookie + CSRF header), dialogs, the live console.
"use strict";
(function () {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  async function api(endpoint, body) {
    const response = await fetch("/" + endpoint, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    const envelope = await response.json();
    if (envelope.meta.result_code !== 200) throw new Error(envelope.meta.result_msg);
    return envelope.data;
  }
  window.clearmlApi = api;

  function flash(message) {
    const box = document.getElementById("flash");
    if (!box) return;
    box.textContent = message;
    box.hidden = !message;
  }

  function confirmed(text) {
    const dialog = document.getElementById("confirm-dialog");
    if (!text || !dialog) return Promise.resolve(true);
    document.getElementById("confirm-text").textContent = text;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.returnValue = "";
      dialog.showModal();
    });
  }

  function then(how, result) {
    if (how && how.startsWith("goto:")) window.location.assign(how.slice(5));
    else if (how === "task") window.location.assign("/projects/*/tasks/" + result.id + "/execution");
    else window.location.reload();
  }

  async function run(element, body) {
    try {
      const result = await api(element.dataset.call, body);
      then(element.dataset.then, result);
    } catch (error) {
      flash(element.dataset.call + ": " + error.message);
    }
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.dataset.call && !button.form) {
      event.preventDefault();
      if (await confirmed(button.dataset.confirm)) run(button, JSON.parse(button.dataset.body || "{}"));
    } else if (button.dataset.open) {
      document.getElementById(button.dataset.open).showModal();
    } else if (button.hasAttribute("data-close")) {
      button.closest("dialog").close();
    } else if (button.dataset.jump) {
      const pane = document.getElementById(button.dataset.jump);
      pane.scrollTop = pane.scrollHeight;
      window.scrollTo(0, document.body.scrollHeight);
    }
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.dataset.call) return;
    event.preventDefault();
    const body = JSON.parse(form.dataset.body || "{}");
    if (form.dataset.kind === "hyperparams") {
      body.hyperparams = [];
      for (const input of form.querySelectorAll("input[data-param]")) {
        body.hyperparams.push({ ...JSON.parse(input.dataset.param), section: form.dataset.section, value: input.value });
      }
    } else {
      for (const [name, value] of new FormData(form)) if (value !== "") body[name] = value;
    }
    run(form, body);
  });

  // Long tables paint their first screenful; the rows after it are shown once that frame is painted.
  const later = document.querySelectorAll("tbody.later");
  if (later.length) requestAnimationFrame(() => setTimeout(() => later.forEach((rows) => rows.classList.remove("later")), 0));

  document.querySelectorAll("select[data-navigate]").forEach((select) => {
    select.addEventListener("change", () => window.location.assign(select.value));
  });

  // The task table: pick two or more rows to compare.
  const compare = document.getElementById("compare");
  if (compare) {
    const picked = () => [...document.querySelectorAll("input.pick:checked")].map((box) => box.value);
    document.addEventListener("change", (event) => {
      if (event.target.classList.contains("pick")) compare.disabled = picked().length < 2;
    });
    compare.addEventListener("click", () => {
      window.location.assign("/projects/" + compare.dataset.project + "/compare-tasks;ids=" + picked().join(",") + "/scalars");
    });
  }

  // The console: while the task is queued or running, new lines are appended as they arrive, read in the
  // order the server stored them (a line stamped earlier than the newest shown is new all the same).
  const log = document.getElementById("log");
  if (log && log.dataset.live === "1") {
    let stored = Number(log.dataset.stored);
    let live = true;
    const status = document.getElementById("task-status");
    async function poll() {
      try {
        const found = await api("events.get_task_log", { task: log.dataset.task, stored_after: stored, batch_size: 5000 });
        if (found.events.length) {
          const follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
          log.append(document.createTextNode(found.events.map((e) => String(e.msg).replace(/\n$/, "") + "\n").join("")));
          if (follow) log.scrollTop = log.scrollHeight;
        }
        stored = found.stored_last;
        const task = (await api("tasks.get_all", { id: [log.dataset.task], only_fields: ["status"] })).tasks[0];
        if (task && status) {
          status.textContent = task.status;
          status.className = "status s-" + task.status;
        }
        if (found.events.length === 5000) { window.setTimeout(poll, 0); return; }  // more stored already
        if (!live) return;
        if (task && task.status !== "queued" && task.status !== "in_progress") live = false;  // one more read, then stop
        window.setTimeout(poll, 1000);
      } catch (error) {
        flash("console: " + error.message);
      }
    }
    window.setTimeout(poll, 1000);
  }
  // At the end; once more after the first frame, when the blocks shown have their real height.
  if (log) {
    log.scrollTop = log.scrollHeight;
    requestAnimationFrame(() => setTimeout(() => { log.scrollTop = log.scrollHeight; }, 0));
  }
})();
