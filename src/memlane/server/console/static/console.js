// memlane console: the one script. The job page follows its job by polling a small JSON route
// and reloads once the job has ended (the finished page shows the gate's verdict).
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box || box.dataset.finished === "yes") {
    return;
  }
  var url = box.dataset.status;

  function show(id, value) {
    var element = document.getElementById(id);
    if (element) {
      element.textContent = value;
    }
  }

  function update(job) {
    var state = document.getElementById("job-state");
    state.textContent = job.state;
    state.className = "state " + job.state;
    show("job-stage", job.stage || "–");
    var bar = document.getElementById("job-progress");
    if (job.progress) {
      bar.max = job.progress.total || 1;
      bar.value = job.progress.done;
      var left = job.progress.eta_seconds;
      show("job-progress-text", job.progress.done + " / " + job.progress.total +
        (left !== null && left !== undefined ? ", about " + Math.round(left) + " s left" : ""));
    }
    show("job-log", job.log.join("\n"));
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (job) {
        update(job);
        if (job.finished) {
          window.location.reload();
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () {
        window.setTimeout(poll, 3000);
      });
  }

  window.setTimeout(poll, 500);
})();
