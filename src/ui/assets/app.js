// The admin UI's entry: sign-in, the navigation (hash routes) and the pages.
import { session, signIn, signOut, adoptCookie } from './api.js';
import * as pages from './pages.js';

const $ = (id) => document.getElementById(id);

const ROUTES = {
  keys: pages.keys,
  teams: pages.teams,
  users: pages.users,
  organizations: pages.organizations,
  customers: pages.customers,
  models: pages.models,
  spend: pages.spend,
  logs: pages.logs,
};

function showSignIn(message) {
  $('top').hidden = true;
  $('page').replaceChildren();
  $('signin').hidden = false;
  $('signin-error').textContent = message || '';
  $('password').focus();
}

async function route() {
  const s = session.get();
  if (!s || !s.key) { showSignIn(); return; }
  $('signin').hidden = true;
  $('top').hidden = false;
  $('who').textContent = s.user_id ? `${s.user_id}${s.user_role ? ` (${s.user_role})` : ''}` : '';
  const name = (location.hash.replace(/^#\/?/, '') || 'keys').split('?')[0];
  const draw = ROUTES[name] || pages.keys;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · llmgate admin`;
  const page = $('page');
  page.replaceChildren();
  page.dataset.page = name;
  try {
    await draw(page);
  } finally {
    page.dataset.ready = name;
  }
}

function setupSignIn() {
  const form = $('signin-form');
  const user = $('username-field');
  for (const r of form.querySelectorAll('input[name=mode]')) {
    r.addEventListener('change', () => {
      const master = form.elements.mode.value === 'master';
      user.hidden = master;
      $('password-label').textContent = master ? 'Master key' : 'Password';
      $('username').value = master ? 'admin' : '';
    });
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    $('signin-error').textContent = '';
    try {
      const master = form.elements.mode.value === 'master';
      await signIn(master ? 'admin' : $('username').value.trim(), $('password').value);
      $('password').value = '';
      // A sign-in starts on the keys page (a deep link opened before signing in is kept).
      if (!location.hash || signedOut) history.replaceState(null, '', '/ui/#/keys');
      signedOut = false;
      await route();
    } catch (e) {
      $('signin-error').textContent = e.message;
    } finally {
      button.disabled = false;
    }
  });
}

// Set by a sign-out: the next sign-in (maybe another user) starts on the keys page.
let signedOut = false;

async function main() {
  setupSignIn();
  $('logout').addEventListener('click', async () => {
    await signOut();
    signedOut = true;
    showSignIn('Signed out.');
  });
  window.addEventListener('hashchange', route);
  window.addEventListener('llmgate:unauthorized', () => {
    session.clear();
    signedOut = true;
    showSignIn('Your session ended: sign in again.');
  });
  // A form post to /login hands the session over in a one-minute cookie.
  if (await adoptCookie()) history.replaceState(null, '', `/ui/${location.hash || '#/keys'}`);
  await route();
}

main();
