// A real OpenID provider for the sign-in test: panva's certified `oidc-provider`, one
// confidential client, four static accounts (e-mail, name and groups claims), and a plain
// login form that checks their passwords. Test use only: ephemeral keys, no TLS.
//
//   node provider.js CLIENT_ID CLIENT_SECRET REDIRECT_URI
//
// Listens on 127.0.0.1, a free port; prints one JSON line {"issuer": ...} once it answers.
import http from 'node:http';
import { once } from 'node:events';

import Provider from 'oidc-provider';

const [clientId, clientSecret, redirectUri] = process.argv.slice(2);
if (!clientId || !clientSecret || !redirectUri) {
  console.error('usage: node provider.js CLIENT_ID CLIENT_SECRET REDIRECT_URI');
  process.exit(2);
}

// One account per role, plus one on no list (the test's [roles] name them).
const ACCOUNTS = {
  vera: { password: 'vera-pw', email: 'vera@example.org', name: 'Vera Viewer', groups: ['readers'] },
  eddie: { password: 'eddie-pw', email: 'Eddie@Example.org', name: 'Eddie Editor', groups: ['readers'] },
  ada: { password: 'ada-pw', email: 'ada@example.org', name: 'Ada Admin', groups: ['lab-admins'] },
  sam: { password: 'sam-pw', email: 'sam@elsewhere.org', name: 'Sam Stranger', groups: ['visitors'] },
};

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8">
<title>${escape(title)}</title></head><body><h1>${escape(title)}</h1>${body}</body></html>`;

const loginForm = (uid, error) => page('Test provider sign-in', `
${error ? `<p role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
  <label>Username <input name="login" autocomplete="off" autofocus></label>
  <label>Password <input name="password" type="password"></label>
  <button type="submit">Sign in</button>
</form>`);

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const server = http.createServer();
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: [redirectUri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
  }],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // Streamlit keeps the ID token's claims (not the userinfo endpoint's): put them there.
  conformIdTokenClaims: false,
  cookies: { keys: ['test-only-cookie-key'] },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      logoutSource: async (ctx, form) => {
        ctx.body = page('Sign out of the test provider?',
          `${form}<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>`);
      },
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, email: account.email, email_verified: true, name: account.name, groups: account.groups,
        };
      },
    };
  },
  // A first-party client: every scope and claim it asks for is granted without a consent page.
  async loadExistingGrant(ctx) {
    if (!ctx.oidc.session.accountId) return undefined;
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.requestParamScopes ? [...ctx.oidc.requestParamScopes].join(' ') : 'openid');
    grant.addOIDCClaims([...(ctx.oidc.requestParamClaims || [])]);
    await grant.save();
    return grant;
  },
});

const callback = provider.callback();

server.on('request', async (req, res) => {
  const match = req.url.match(/^\/interaction\/([^/?]+)(\/login)?/);
  if (!match) {
    callback(req, res);
    return;
  }
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== match[1]) throw new Error('interaction mismatch');
    if (req.method === 'GET' && !match[2]) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(loginForm(details.uid));
      return;
    }
    if (req.method === 'POST' && match[2]) {
      const form = await readForm(req);
      const login = form.get('login') || '';
      const account = ACCOUNTS[login];
      if (!account || account.password !== form.get('password')) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(loginForm(details.uid, 'Wrong username or password.'));
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
      return;
    }
    res.writeHead(405).end();
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`interaction error: ${err.message}`);
  }
});

process.stdout.write(`${JSON.stringify({ issuer })}\n`);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
