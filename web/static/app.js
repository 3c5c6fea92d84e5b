// sailmaker's pages: follow a build's log as it is written, refresh the
// build list while builds run, filter tables as you type. Served from this
// origin only (Content-Security-Policy: script-src 'self'); no inline script.
'use strict';

(function () {
  const FINAL = new Set(['succeeded', 'failed', 'cancelled']);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // followLog streams /builds/{id}/log into the <pre>: one request that the
  // service keeps open while the build runs, resumed at the byte offset
  // already shown if it breaks. When a build that was running ends, the
  // page is loaded again to show its result and images.
  async function followLog(pre) {
    const url = pre.dataset.log;
    const status = document.getElementById('log-status');
    const wasFinal = pre.dataset.final === 'true';
    const decoder = new TextDecoder();
    let offset = 0;
    let failures = 0;
    const say = (text) => { if (status) status.textContent = text; };
    for (;;) {
      let state = '';
      try {
        const resp = await fetch(url + '?offset=' + offset, { credentials: 'same-origin', cache: 'no-store' });
        if (!resp.ok) {
          throw new Error('the service answered ' + resp.status);
        }
        state = resp.headers.get('X-Sailmaker-Build-State') || '';
        if (!FINAL.has(state)) {
          say('Following the log as the build writes it…');
        }
        const reader = resp.body.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          offset += value.byteLength;
          const follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
          pre.append(decoder.decode(value, { stream: true }));
          if (follow) pre.scrollTop = pre.scrollHeight;
          failures = 0;
        }
      } catch (err) {
        failures++;
        if (failures > 5) {
          say('The log stopped: ' + err.message + '. Reload the page to try again.');
          return;
        }
        say('The log stream broke (' + err.message + '); trying again…');
        await sleep(1000 * failures);
        continue;
      }
      if (FINAL.has(state)) {
        if (!wasFinal) {
          say('The build has ' + state + '; loading its result…');
          window.location.reload();
        } else {
          say('The build has ' + state + '.');
        }
        return;
      }
      // The stream ended while the build ran (the service stopped, or the
      // connection dropped): resume where it left off.
      await sleep(1000);
    }
  }

  // autoRefresh loads the page again in the background every few seconds
  // and swaps in the fresh part (the build list, or a build's state, phases
  // and images), while it says builds are running.
  function autoRefresh(el) {
    const every = (parseInt(el.dataset.refresh, 10) || 5) * 1000;
    const id = el.id;
    const tick = async () => {
      if (!document.hidden) {
        try {
          const resp = await fetch(window.location.href, { credentials: 'same-origin', cache: 'no-store' });
          if (resp.ok && !resp.redirected) {
            const doc = new DOMParser().parseFromString(await resp.text(), 'text/html');
            const fresh = doc.getElementById(id);
            const current = document.getElementById(id);
            if (fresh && current) {
              // Keep the keyboard focus on the same control.
              const focused = current.contains(document.activeElement) ? document.activeElement.id : '';
              current.replaceWith(document.adoptNode(fresh));
              if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
              if (!fresh.dataset.refresh) return;
            }
          }
        } catch (err) {
          // try again at the next tick
        }
      }
      setTimeout(tick, every);
    };
    setTimeout(tick, every);
  }

  // filterTable hides the rows of a table that do not contain what is typed
  // in the input (the form still searches on the server without script).
  function filterTable(input) {
    const table = document.getElementById(input.dataset.filter);
    if (!table) return;
    const count = document.getElementById('sbom-count');
    input.addEventListener('input', () => {
      const q = input.value.trim().toLowerCase();
      let shown = 0;
      for (const row of table.tBodies[0].rows) {
        const match = q === '' || row.textContent.toLowerCase().includes(q);
        row.hidden = !match;
        if (match) shown++;
      }
      if (count) count.textContent = shown + ' of ' + table.tBodies[0].rows.length + ' rows' + (q ? ' match “' + input.value.trim() + '”' : '') + '.';
    });
  }

  const log = document.getElementById('log');
  if (log) followLog(log);
  const live = document.querySelector('[data-refresh]');
  if (live) autoRefresh(live);
  document.querySelectorAll('input[data-filter]').forEach(filterTable);
})();
