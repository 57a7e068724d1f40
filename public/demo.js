// The demo single-page app: everything goes through the JS client (sdk/, served as /sdk/tmi-bff.js).
// The API it calls is the access token's audience: with BFF_DEFAULT_RESOURCE set to the API's
// URL (its RFC 8707 resource indicator), the backend hands out JWTs whose `aud` is that URL.
import { createClient } from '/sdk/tmi-bff.js';

const bff = createClient(); // base path: <meta name="tmi-bff-base">, else the origin root
window.bff = bff; // for the browser console and the browser tests

const $ = (id) => document.getElementById(id);
let loggedIn = false;
let lastToken = null;

function note(text, cls = '') {
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  if (cls) item.className = cls;
  $('events').prepend(item);
}

function buttons() {
  $('login').disabled = loggedIn;
  $('call').disabled = !loggedIn;
  $('logout').disabled = !loggedIn;
}

// The payload of a JWT access token, for display only (the API verifies it; the page need not).
function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return null;
  }
}

function showToken(token) {
  const claims = token && claimsOf(token);
  $('token-scope').textContent = claims?.scope ?? '–';
  $('token-aud').textContent = [].concat(claims?.aud ?? '–').join(' ');
  // A DPoP-bound token (RFC 9449) names the key it is bound to: this page's, held by the client.
  const jkt = claims?.cnf?.jkt;
  $('token-type').textContent = !token ? '–' : jkt ? `DPoP (bound to key ${jkt.slice(0, 12)}…)` : 'Bearer';
  $('token-value').textContent = token ? `${token.slice(0, 16)}…${token.slice(-8)} (${token.length} characters)` : '–';
  $('token').dataset.exp = claims?.exp ?? '';
  tick();
  if (token && token !== lastToken) note(`new access token, expires ${new Date(claims?.exp * 1000).toLocaleTimeString()}`);
  lastToken = token;
}

function tick() {
  const exp = Number($('token').dataset.exp);
  if (!exp) {
    $('token-exp').textContent = '–';
    return;
  }
  const left = Math.round(exp - Date.now() / 1000);
  $('token-exp').textContent = `${new Date(exp * 1000).toLocaleTimeString()} (${left > 0 ? `in ${left} s` : 'expired: the next call gets a new one'})`;
}
setInterval(tick, 1000);

async function loadToken() {
  try {
    showToken(await bff.getToken());
  } catch (error) {
    showToken(null);
    $('token-value').textContent = error.message;
    if (error.loginUrl) note(`the backend needs a login: ${error.loginUrl}`, 'bad');
  }
}

async function loadSession() {
  try {
    const session = await bff.getSession();
    loggedIn = session !== null;
    $('who').className = loggedIn ? 'status in' : 'status';
    $('who').textContent = loggedIn
      ? `Logged in as ${session.name ?? session.sub} (${session.sub}).`
      : 'Not logged in.';
    $('session').textContent = loggedIn ? JSON.stringify(session, null, 2) : '–';
    if (loggedIn) await loadToken();
  } catch (error) {
    $('who').textContent = `The backend answered: ${error.message}`;
  }
  buttons();
  document.body.dataset.state = loggedIn ? 'in' : 'out'; // loaded (the browser tests wait for it)
}

$('login').onclick = () => bff.login();

$('logout').onclick = async () => {
  $('logout').disabled = true;
  try {
    await bff.logout(); // then the browser goes to the provider's logout page
  } catch (error) {
    note(`logout failed: ${error.message}`, 'bad');
    buttons();
  }
};

$('call').onclick = async () => {
  $('api').textContent = 'calling…';
  $('api').dataset.state = 'calling';
  try {
    const audience = [].concat(claimsOf(await bff.getToken())?.aud ?? [])[0];
    if (!audience) throw new Error('the access token is not a JWT with an audience: set BFF_DEFAULT_RESOURCE to the API');
    const response = await bff.fetch(new URL('hello', audience), { headers: { accept: 'application/json' } });
    const body = await response.json().catch(() => null);
    $('api').textContent = `HTTP ${response.status}\n${JSON.stringify(body, null, 2)}`;
    $('api').className = response.ok ? 'ok' : 'bad';
    note(`API answered ${response.status}`, response.ok ? '' : 'bad');
    showToken(await bff.getToken()); // the token the call used (from memory)
  } catch (error) {
    $('api').textContent = error.message;
    $('api').className = 'bad';
    note(`API call failed: ${error.message}`, 'bad');
  }
  $('api').dataset.state = 'done';
};

bff.addEventListener('sessionend', (event) => {
  note(`sessionend (${event.detail.reason})`, 'bad');
  loggedIn = false;
  $('who').className = 'status ended';
  $('who').textContent = event.detail.reason === 'other-tab'
    ? 'The session ended: you logged out in another tab.'
    : 'The session ended.';
  $('session').textContent = '–';
  showToken(null);
  buttons();
});

$('base').textContent = bff.basePath ? `backend under ${bff.basePath}` : '';
loadSession();
