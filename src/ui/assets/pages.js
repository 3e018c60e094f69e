// The pages. Each takes the page element and draws itself from the management API.
import { api, optional, session, ApiError } from './api.js';
import { h, mount, field, table, formValues, usd, num, when } from './dom.js';
import { lineChart, days, seriesFrom } from './chart.js';

const SESSION_MARK = 'llmgate_ui_session';
const isAdmin = () => ['proxy_admin', 'proxy_admin_viewer'].includes((session.get() || {}).user_role);

/** A message line that shows an API error (or nothing). */
function status() {
  const el = h('p', { class: 'error', role: 'alert' });
  el.show = (e) => { el.className = 'error'; el.textContent = e ? (e.message || String(e)) : ''; };
  el.ok = (msg) => { el.className = 'ok'; el.textContent = msg; };
  return el;
}

/** Runs `fn`, showing its error in `line`; disables `button` meanwhile. */
async function attempt(line, fn, button) {
  line.show(null);
  if (button) button.disabled = true;
  try { return await fn(); } catch (e) { line.show(e); return undefined; } finally { if (button) button.disabled = false; }
}

function notAvailable(title, route) {
  return h('div', { class: 'card notice', role: 'status' },
    h('strong', {}, `${title}: not available`),
    h('p', { class: 'muted' }, `This server does not answer ${route} (404). It needs an llmgate with that part of the management API.`));
}

const budgetText = (r) => (r.max_budget == null ? 'no budget' : `${usd(r.spend || 0)} / ${usd(r.max_budget)}${r.budget_duration ? ` per ${r.budget_duration}` : ''}`);
const limitsText = (r) => [r.tpm_limit != null ? `${num(r.tpm_limit)} tpm` : null, r.rpm_limit != null ? `${num(r.rpm_limit)} rpm` : null].filter(Boolean).join(', ') || '—';
const isoDay = (d) => d.toISOString().slice(0, 10);

// ------------------------------------------------------------------------------------------ keys

export async function keys(page) {
  const msg = status();
  const created = h('div');
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const teamsSel = h('select', { id: 'new-key-team', name: 'team_id' }, h('option', { value: '' }, '(no team)'));
  const showSessions = h('input', { type: 'checkbox', id: 'show-sessions' });
  const form = h('form', { class: 'grid', id: 'new-key', 'aria-label': 'Create a key' },
    field('Alias', { name: 'key_alias', placeholder: 'billing-service' }),
    h('div', { class: 'field' }, h('label', { for: 'new-key-team' }, 'Team'), teamsSel),
    field('Models (comma-separated; empty: all)', { name: 'models' }),
    field('Max budget (USD)', { name: 'max_budget', type: 'number', step: 'any', min: '0' }),
    field('Budget period', { name: 'budget_duration', placeholder: '30d' }),
    field('TPM limit', { name: 'tpm_limit', type: 'number', min: '0' }),
    field('RPM limit', { name: 'rpm_limit', type: 'number', min: '0' }),
    field('Expires after', { name: 'duration', placeholder: '90d' }),
    h('button', { type: 'submit', class: 'primary' }, 'Create key'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = formValues(form, { numbers: ['max_budget', 'tpm_limit', 'rpm_limit'], lists: ['models'] });
    const r = await attempt(msg, () => api('/key/generate', body), form.querySelector('button'));
    if (!r) return;
    form.reset();
    const code = h('code', { id: 'new-key-secret' }, r.key);
    mount(created, h('div', { class: 'card', role: 'status' },
      h('strong', {}, 'Your new key. It is shown only this once: copy it now.'),
      h('div', { class: 'secret' }, code,
        h('button', { type: 'button', onclick: async (e) => {
          try { await navigator.clipboard.writeText(r.key); e.target.textContent = 'Copied'; } catch { e.target.textContent = 'Select and copy it'; }
        } }, 'Copy'),
        h('button', { type: 'button', id: 'dismiss-secret', onclick: () => mount(created) }, 'Done'))));
    await refresh();
  });
  showSessions.addEventListener('change', () => refresh());

  async function refresh() {
    // An admin lists every key; anyone else their own (their user's keys, via /user/info).
    const r = await attempt(msg, () => (isAdmin() ? api('/key/list?return_full_object=true&size=100') : api('/user/info')));
    if (!r) return;
    const rows = (r.keys || []).filter((k) => showSessions.checked || !(k.metadata && k.metadata[SESSION_MARK]));
    mount(list, table([
      { label: 'Alias', render: (k) => k.key_alias || h('span', { class: 'muted' }, '—') },
      { label: 'Key', render: (k) => h('code', {}, k.key_name || k.token.slice(0, 10)) },
      { label: 'Team', key: 'team_id' },
      { label: 'User', key: 'user_id' },
      { label: 'Spend', num: true, render: (k) => h('span', { class: 'spend', 'data-token': k.token }, usd(k.spend || 0)) },
      { label: 'Budget', render: budgetText },
      { label: 'Limits', render: limitsText },
      { label: 'Expires', render: (k) => (k.expires ? when(k.expires) : 'never') },
      { label: 'Status', render: (k) => h('span', { class: `badge ${k.blocked ? 'bad' : 'ok'}` }, k.blocked ? 'blocked' : 'active') },
      { label: 'Actions', render: (k) => h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => editKey(k, refresh) }, 'Edit'),
        h('button', { type: 'button', onclick: () => attempt(msg, async () => { await api(k.blocked ? '/key/unblock' : '/key/block', { key: k.token }); await refresh(); }) }, k.blocked ? 'Unblock' : 'Block'),
        h('button', { type: 'button', class: 'danger', onclick: () => {
          if (window.confirm(`Delete key ${k.key_alias || k.key_name}? Callers using it are refused at once.`)) {
            attempt(msg, async () => { await api('/key/delete', { keys: [k.token] }); await refresh(); });
          }
        } }, 'Delete')) },
    ], rows, `${rows.length} key(s)`));
  }

  mount(page,
    h('h1', {}, 'Keys'),
    h('section', { class: 'card', 'aria-labelledby': 'nk' }, h('h2', { id: 'nk' }, 'Create a key'), form, msg),
    created,
    h('p', {}, h('label', {}, showSessions, ' show sign-in session keys')),
    list);
  api('/team/list').then((ts) => {
    for (const t of ts || []) teamsSel.append(h('option', { value: t.team_id }, t.team_alias ? `${t.team_alias} (${t.team_id})` : t.team_id));
  }).catch(() => {});
  await refresh();
}

function editKey(k, done) {
  const msg = status();
  const form = h('form', { method: 'dialog', class: 'grid', 'aria-label': 'Edit key' },
    field('Alias', { name: 'key_alias', value: k.key_alias || '' }),
    field('Max budget (USD)', { name: 'max_budget', type: 'number', step: 'any', min: '0', value: k.max_budget ?? '' }),
    field('Budget period', { name: 'budget_duration', value: k.budget_duration || '' }),
    field('TPM limit', { name: 'tpm_limit', type: 'number', min: '0', value: k.tpm_limit ?? '' }),
    field('RPM limit', { name: 'rpm_limit', type: 'number', min: '0', value: k.rpm_limit ?? '' }),
    field('Max parallel requests', { name: 'max_parallel_requests', type: 'number', min: '0', value: k.max_parallel_requests ?? '' }),
    field('Models (comma-separated)', { name: 'models', value: (k.models || []).join(', ') }),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Save'),
      h('button', { type: 'button', onclick: () => dlg.close() }, 'Cancel')));
  const dlg = h('dialog', { 'aria-label': `Edit key ${k.key_alias || k.key_name}` }, h('h2', {}, `Edit ${k.key_alias || k.key_name}`), form, msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { key: k.token, ...formValues(form, { numbers: ['max_budget', 'tpm_limit', 'rpm_limit', 'max_parallel_requests'], lists: ['models'] }) };
    if (!form.elements.models.value.trim()) body.models = [];
    const r = await attempt(msg, () => api('/key/update', body), form.querySelector('button'));
    if (r) { dlg.close(); done(); }
  });
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
}

// ----------------------------------------------------------------------------------------- teams

export async function teams(page) {
  const msg = status();
  const list = h('div');
  const detail = h('div');
  const form = h('form', { class: 'grid', id: 'new-team', 'aria-label': 'Create a team' },
    field('Team alias', { name: 'team_alias', required: true, placeholder: 'search' }),
    field('Team id (empty: generated)', { name: 'team_id' }),
    field('Models (comma-separated)', { name: 'models' }),
    field('Max budget (USD)', { name: 'max_budget', type: 'number', step: 'any', min: '0' }),
    field('Budget period', { name: 'budget_duration', placeholder: '30d' }),
    field('TPM limit', { name: 'tpm_limit', type: 'number', min: '0' }),
    field('RPM limit', { name: 'rpm_limit', type: 'number', min: '0' }),
    h('button', { type: 'submit', class: 'primary' }, 'Create team'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = formValues(form, { numbers: ['max_budget', 'tpm_limit', 'rpm_limit'], lists: ['models'] });
    const r = await attempt(msg, () => api('/team/new', body), form.querySelector('button'));
    if (r) { form.reset(); msg.ok(`Team ${r.team_alias || r.team_id} created.`); await refresh(); }
  });

  async function refresh() {
    const ts = await attempt(msg, () => api('/team/list'));
    if (!ts) return;
    mount(list, table([
      { label: 'Alias', key: 'team_alias' },
      { label: 'Id', render: (t) => h('code', {}, t.team_id) },
      { label: 'Members', num: true, render: (t) => num((t.members_with_roles || []).length) },
      { label: 'Models', render: (t) => (t.models || []).join(', ') || 'all' },
      { label: 'Spend / budget', render: budgetText },
      { label: 'Limits', render: limitsText },
      { label: 'Status', render: (t) => h('span', { class: `badge ${t.blocked ? 'bad' : 'ok'}` }, t.blocked ? 'blocked' : 'active') },
      { label: 'Actions', render: (t) => h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => members(t.team_id) }, 'Members'),
        h('button', { type: 'button', onclick: () => attempt(msg, async () => { await api(t.blocked ? '/team/unblock' : '/team/block', { team_id: t.team_id }); await refresh(); }) }, t.blocked ? 'Unblock' : 'Block'),
        h('button', { type: 'button', class: 'danger', onclick: () => {
          if (window.confirm(`Delete team ${t.team_alias || t.team_id} and its keys?`)) attempt(msg, async () => { await api('/team/delete', { team_ids: [t.team_id] }); mount(detail); await refresh(); });
        } }, 'Delete')) },
    ], ts, `${ts.length} team(s)`));
  }

  async function members(teamId) {
    const line = status();
    const info = await attempt(line, () => api(`/team/info?team_id=${encodeURIComponent(teamId)}`));
    const t = (info && (info.team_info || info)) || {};
    const add = h('form', { class: 'grid', 'aria-label': 'Add a member' },
      field('User id', { name: 'user_id' }),
      field('or e-mail', { name: 'user_email', type: 'email' }),
      field('Role', { name: 'role' }, 'select', [['user', 'user'], ['admin', 'admin']]),
      h('button', { type: 'submit', class: 'primary' }, 'Add member'));
    add.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const member = formValues(add);
      const r = await attempt(line, () => api('/team/member_add', { team_id: teamId, member: [member] }), add.querySelector('button'));
      if (r) { await members(teamId); await refresh(); }
    });
    mount(detail, h('section', { class: 'card', 'aria-labelledby': 'mt' },
      h('h2', { id: 'mt' }, `Members of ${t.team_alias || teamId}`),
      table([
        { label: 'User', render: (m) => m.user_id || '' },
        { label: 'E-mail', render: (m) => m.user_email || '' },
        { label: 'Role', key: 'role' },
        { label: 'Actions', render: (m) => h('button', { type: 'button', class: 'danger', onclick: () => attempt(line, async () => {
          await api('/team/member_delete', m.user_id ? { team_id: teamId, user_id: m.user_id } : { team_id: teamId, user_email: m.user_email });
          await members(teamId); await refresh();
        }) }, 'Remove') },
      ], t.members_with_roles || []),
      add, line));
  }

  mount(page, h('h1', {}, 'Teams'),
    h('section', { class: 'card', 'aria-labelledby': 'nt' }, h('h2', { id: 'nt' }, 'Create a team'), form, msg),
    list, detail);
  await refresh();
}

// ----------------------------------------------------------------------------------------- users

const ROLES = ['internal_user', 'internal_user_viewer', 'proxy_admin', 'proxy_admin_viewer'];

export async function users(page) {
  const msg = status();
  const list = h('div');
  const form = h('form', { class: 'grid', id: 'new-user', 'aria-label': 'Create a user' },
    field('User id (empty: generated)', { name: 'user_id' }),
    field('E-mail', { name: 'user_email', type: 'email' }),
    field('Role', { name: 'user_role' }, 'select', ROLES.map((r) => [r, r])),
    field('UI password (optional)', { name: 'password', type: 'password', autocomplete: 'new-password' }),
    field('Max budget (USD)', { name: 'max_budget', type: 'number', step: 'any', min: '0' }),
    h('button', { type: 'submit', class: 'primary' }, 'Create user'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { ...formValues(form, { numbers: ['max_budget'] }), auto_create_key: false };
    const r = await attempt(msg, () => api('/user/new', body), form.querySelector('button'));
    if (r) { form.reset(); msg.ok(`User ${r.user_id} created.`); await refresh(); }
  });
  async function refresh() {
    const r = await attempt(msg, () => api('/user/list?page_size=100'));
    if (!r) return;
    mount(list, table([
      { label: 'User', render: (u) => h('code', {}, u.user_id) },
      { label: 'E-mail', key: 'user_email' },
      { label: 'Role', key: 'user_role' },
      { label: 'Teams', render: (u) => (u.teams || []).join(', ') },
      { label: 'Spend / budget', render: budgetText },
      { label: 'Actions', render: (u) => h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => {
          const p = window.prompt(`New UI password for ${u.user_email || u.user_id}:`);
          if (p) attempt(msg, async () => { await api('/user/update', { user_id: u.user_id, password: p }); msg.ok('Password set.'); });
        } }, 'Set password'),
        h('button', { type: 'button', class: 'danger', onclick: () => {
          if (window.confirm(`Delete user ${u.user_id} and their keys?`)) attempt(msg, async () => { await api('/user/delete', { user_ids: [u.user_id] }); await refresh(); });
        } }, 'Delete')) },
    ], r.users || [], `${r.total ?? (r.users || []).length} user(s)`));
  }
  mount(page, h('h1', {}, 'Users'),
    h('section', { class: 'card', 'aria-labelledby': 'nu' }, h('h2', { id: 'nu' }, 'Create a user'), form, msg), list);
  await refresh();
}

// ------------------------------------------------------------------ organizations and end users

export async function organizations(page) {
  const msg = status();
  mount(page, h('h1', {}, 'Organizations'), h('p', { class: 'muted' }, 'Loading…'));
  let orgs;
  try { orgs = await optional('/organization/list'); } catch (e) { mount(page, h('h1', {}, 'Organizations'), msg); msg.show(e); return; }
  if (orgs === null) { mount(page, h('h1', {}, 'Organizations'), notAvailable('Organizations', '/organization/list')); return; }
  const form = h('form', { class: 'grid', 'aria-label': 'Create an organization' },
    field('Organization alias', { name: 'organization_alias', required: true }),
    field('Models (comma-separated)', { name: 'models' }),
    field('Max budget (USD)', { name: 'max_budget', type: 'number', step: 'any', min: '0' }),
    h('button', { type: 'submit', class: 'primary' }, 'Create organization'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await attempt(msg, () => api('/organization/new', formValues(form, { numbers: ['max_budget'], lists: ['models'] })), form.querySelector('button'));
    if (r) organizations(page);
  });
  const rows = Array.isArray(orgs) ? orgs : orgs.organizations || orgs.data || [];
  mount(page, h('h1', {}, 'Organizations'),
    h('section', { class: 'card' }, h('h2', {}, 'Create an organization'), form, msg),
    table([
      { label: 'Alias', key: 'organization_alias' },
      { label: 'Id', render: (o) => h('code', {}, o.organization_id) },
      { label: 'Teams', num: true, render: (o) => num((o.teams || []).length) },
      { label: 'Spend / budget', render: (o) => budgetText({ ...o, ...(o.litellm_budget_table || {}) }) },
      { label: 'Actions', render: (o) => h('button', { type: 'button', class: 'danger', onclick: () => {
        if (window.confirm(`Delete organization ${o.organization_alias || o.organization_id}?`)) attempt(msg, async () => { await api('/organization/delete', { organization_ids: [o.organization_id] }); organizations(page); });
      } }, 'Delete') },
    ], rows));
}

export async function customers(page) {
  const msg = status();
  mount(page, h('h1', {}, 'End users'), h('p', { class: 'muted' }, 'Loading…'));
  let cs;
  try { cs = await optional('/customer/list'); } catch (e) { mount(page, h('h1', {}, 'End users'), msg); msg.show(e); return; }
  if (cs === null) { mount(page, h('h1', {}, 'End users'), notAvailable('End users', '/customer/list')); return; }
  const form = h('form', { class: 'grid', 'aria-label': 'Create an end user' },
    field('End-user id', { name: 'user_id', required: true }),
    field('Max budget (USD)', { name: 'max_budget', type: 'number', step: 'any', min: '0' }),
    field('Allowed region', { name: 'allowed_model_region' }, 'select', [['', 'any'], ['eu', 'eu'], ['us', 'us']]),
    h('button', { type: 'submit', class: 'primary' }, 'Create end user'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await attempt(msg, () => api('/customer/new', formValues(form, { numbers: ['max_budget'] })), form.querySelector('button'));
    if (r) customers(page);
  });
  const rows = Array.isArray(cs) ? cs : cs.customers || cs.data || [];
  mount(page, h('h1', {}, 'End users'),
    h('section', { class: 'card' }, h('h2', {}, 'Create an end user'), form, msg),
    table([
      { label: 'End user', render: (c) => h('code', {}, c.user_id) },
      { label: 'Spend / budget', render: (c) => budgetText({ ...c, ...(c.litellm_budget_table || {}) }) },
      { label: 'Region', render: (c) => c.allowed_model_region || 'any' },
      { label: 'Status', render: (c) => h('span', { class: `badge ${c.blocked ? 'bad' : 'ok'}` }, c.blocked ? 'blocked' : 'active') },
      { label: 'Actions', render: (c) => h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => attempt(msg, async () => { await api(c.blocked ? '/customer/unblock' : '/customer/block', { user_ids: [c.user_id] }); customers(page); }) }, c.blocked ? 'Unblock' : 'Block'),
        h('button', { type: 'button', class: 'danger', onclick: () => {
          if (window.confirm(`Delete end user ${c.user_id}?`)) attempt(msg, async () => { await api('/customer/delete', { user_ids: [c.user_id] }); customers(page); });
        } }, 'Delete')) },
    ], rows));
}

// ---------------------------------------------------------------------------------------- models

export async function models(page) {
  const msg = status();
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const check = h('button', { type: 'button', id: 'run-health' }, 'Check health now');
  let health = null;
  async function draw() {
    const info = await attempt(msg, () => api('/model/info'));
    if (!info) return;
    const state = (m) => {
      if (!health) return h('span', { class: 'muted' }, 'not checked');
      const id = m.model_info && m.model_info.id;
      const match = (e) => (e.model_id && e.model_id === id) || (!e.model_id && e.model === (m.litellm_params || {}).model);
      const bad = (health.unhealthy_endpoints || []).find(match);
      if (bad) return h('span', { class: 'badge bad', title: bad.error || '' }, 'unhealthy');
      if ((health.healthy_endpoints || []).find(match)) return h('span', { class: 'badge ok' }, 'healthy');
      return h('span', { class: 'muted' }, 'unknown');
    };
    mount(list, table([
      { label: 'Model group', key: 'model_name' },
      { label: 'Upstream model', render: (m) => h('code', {}, (m.litellm_params || {}).model || '') },
      { label: 'Provider', render: (m) => (m.model_info || {}).litellm_provider || ((m.litellm_params || {}).model || '').split('/')[0] },
      { label: 'Health', render: state },
      { label: 'Input $/1M', num: true, render: (m) => { const c = (m.model_info || {}).input_cost_per_token; return c == null ? '' : usd(c * 1e6); } },
      { label: 'Output $/1M', num: true, render: (m) => { const c = (m.model_info || {}).output_cost_per_token; return c == null ? '' : usd(c * 1e6); } },
    ], info.data || [], health ? `${health.healthy_count ?? (health.healthy_endpoints || []).length} healthy, ${health.unhealthy_count ?? (health.unhealthy_endpoints || []).length} unhealthy` : undefined));
  }
  check.addEventListener('click', async () => {
    const r = await attempt(msg, () => api('/health'), check);
    if (r) { health = r; await draw(); }
  });
  mount(page, h('h1', {}, 'Models'), h('p', {}, check, ' ', h('span', { class: 'muted' }, 'probes every deployment with a real call')), msg, list);
  await draw();
}

// ----------------------------------------------------------------------------------------- spend

export async function spend(page) {
  const msg = status();
  const out = h('div');
  const today = new Date();
  const from = new Date(today.getTime() - 13 * 86400e3);
  const form = h('form', { class: 'grid', 'aria-label': 'Spend period' },
    field('From', { name: 'start_date', type: 'date', value: isoDay(from), required: true }),
    field('To', { name: 'end_date', type: 'date', value: isoDay(today), required: true }),
    h('button', { type: 'submit', class: 'primary' }, 'Show'));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); draw(); });
  async function draw() {
    const { start_date: a, end_date: b } = formValues(form);
    const q = `start_date=${a}&end_date=${b}`;
    const LIMIT = 10000;
    // Per key and per model: the calls themselves (every call, whether its key has a user or a
    // team); per team and per user: the daily rollups.
    const [calls, tms, usrs] = await Promise.all([
      attempt(msg, () => api(`/spend/logs?${q}&limit=${LIMIT}`)),
      attempt(msg, () => api(`/team/daily/activity?${q}`)),
      attempt(msg, () => api(`/user/daily/activity?${q}`)),
    ]);
    if (!calls) return;
    const labels = days(a, b);
    const results = rollup(calls, labels);
    const total = calls.reduce((t, r) => t + (r.spend || 0), 0);
    const failed = calls.filter((r) => r.status && r.status !== 'success').length;
    const tokens = calls.reduce((t, r) => t + (r.total_tokens || 0), 0);
    mount(out,
      h('div', { class: 'stats' },
        [['Spend', usd(total)], ['Requests', num(calls.length)], ['Failed', num(failed)], ['Tokens', num(tokens)]]
          .map(([k, v]) => h('div', { class: 'card stat' }, h('div', { class: 'muted' }, k), h('div', { class: 'v' }, v)))),
      calls.length >= LIMIT ? h('p', { class: 'muted' }, `The newest ${num(LIMIT)} calls of the period are charted by key and model; narrow the period for all.`) : null,
      h('div', { class: 'charts' },
        lineChart('Spend per day by key', labels, seriesFrom(results, 'api_keys', labels)),
        lineChart('Spend per day by model', labels, seriesFrom(results, 'models', labels)),
        tms ? lineChart('Spend per day by team', labels, seriesFrom(tms.results, 'entities', labels)) : null,
        usrs ? lineChart('Spend per day by user', labels, seriesFrom(usrs.results, 'users', labels)) : null));
  }
  mount(page, h('h1', {}, 'Spend'), h('section', { class: 'card' }, form, msg), out);
  await draw();
}

/** Spend-log rows as daily-activity results (`[{date, breakdown: {api_keys, models}}]`). */
function rollup(calls, labels) {
  const byDay = new Map(labels.map((d) => [d, { date: d, breakdown: { api_keys: {}, models: {} } }]));
  const add = (group, name, spend) => {
    const m = group[name] || (group[name] = { metrics: { spend: 0 } });
    m.metrics.spend += spend || 0;
  };
  for (const r of calls) {
    const day = byDay.get(String(r.startTime || '').slice(0, 10));
    if (!day) continue;
    add(day.breakdown.api_keys, r.key_alias || (r.api_key || '').slice(0, 10), r.spend);
    add(day.breakdown.models, r.model_group || r.model || '?', r.spend);
  }
  return [...byDay.values()];
}

// ------------------------------------------------------------------------------------------ logs

export async function logs(page) {
  const msg = status();
  const out = h('div');
  const form = h('form', { class: 'grid', id: 'log-filters', 'aria-label': 'Filter the logs' },
    field('Key (sk-… or hash)', { name: 'api_key' }),
    field('User', { name: 'user_id' }),
    field('Team', { name: 'team_id' }),
    field('Request id', { name: 'request_id' }),
    field('From', { name: 'start_date', type: 'date' }),
    field('To', { name: 'end_date', type: 'date' }),
    field('At most', { name: 'limit', type: 'number', min: '1', max: '10000', value: '100' }),
    h('button', { type: 'submit', class: 'primary' }, 'Filter'));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); draw(); });
  async function draw() {
    const q = new URLSearchParams(formValues(form)).toString();
    const rows = await attempt(msg, () => api(`/spend/logs${q ? `?${q}` : ''}`), form.querySelector('button'));
    if (!rows) return;
    mount(out, table([
      { label: 'Time', render: (r) => when(r.startTime) },
      { label: 'Request', render: (r) => h('code', {}, r.request_id) },
      { label: 'Model', render: (r) => r.model_group || r.model },
      { label: 'Key', render: (r) => r.key_alias || h('code', {}, (r.api_key || '').slice(0, 10)) },
      { label: 'User', key: 'user' },
      { label: 'Team', key: 'team_id' },
      { label: 'Tokens', num: true, render: (r) => num(r.total_tokens) },
      { label: 'Spend', num: true, render: (r) => usd(r.spend) },
      { label: 'Duration', num: true, render: (r) => (r.request_duration_ms == null ? '' : `${num(r.request_duration_ms)} ms`) },
      { label: 'Status', render: (r) => h('span', { class: `badge ${r.status === 'success' ? 'ok' : 'bad'}` }, r.status || '') },
    ], rows, `${rows.length} call(s), newest first`));
  }
  mount(page, h('h1', {}, 'Request logs'), h('section', { class: 'card' }, form, msg), out);
  await draw();
}

export { ApiError };
