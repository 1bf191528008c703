// The Voice Extension page: an administrator registers component module URLs for the org.
const $ = (s) => document.querySelector(s);
const KEY = 'vb.admin.token';
let token = sessionStorage.getItem(KEY);

async function api(method, path, body) {
  const res = await fetch(`/console/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => null);
  if (!res.ok) throw new Error(json?.message ?? `${res.status} ${res.statusText}`);
  return json;
}

async function refresh() {
  $('#ext-error').textContent = '';
  try {
    const { extensions } = await api('GET', '/extensions');
    $('#add-form').hidden = false;
    $('#ext-list').replaceChildren(...extensions.map((x) => {
      const li = document.createElement('li');
      li.dataset.url = x.url;
      const remove = document.createElement('button');
      remove.textContent = 'Remove';
      remove.addEventListener('click', async () => {
        try { await api('DELETE', `/extensions/${x.id}`); await refresh(); } catch (e) { $('#ext-error').textContent = e.message; }
      });
      li.append(`${x.label} — ${x.url} `, remove);
      return li;
    }));
  } catch (e) {
    $('#add-form').hidden = true;
    $('#ext-error').textContent = e.message;
  }
}

$('#token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $('#admin-token').value.trim();
  sessionStorage.setItem(KEY, token);
  refresh();
});

$('#add-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    await api('POST', '/extensions', { url: $('#ext-url').value.trim(), label: $('#ext-label').value.trim() });
    $('#ext-url').value = '';
    $('#ext-label').value = '';
    await refresh();
  } catch (err) {
    $('#ext-error').textContent = err.message;
  }
});

if (token) refresh();
