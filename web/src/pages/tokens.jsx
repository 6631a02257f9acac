// API tokens: list, create (the secret is shown once), revoke.
import { useState } from "preact/hooks";
import { del, get, post } from "../api.js";
import { Empty, ErrorNote, Spinner, fmt, useAsync } from "../components/ui.jsx";

// Token management over the API (GET/POST/DELETE /tokens) is used when the server offers it; a server
// that manages tokens only from its command line gets the commands to run instead.
function CliTokens() {
  return (
    <div class="card" data-testid="tokens-cli">
      <h3>Manage tokens on the server</h3>
      <p class="help" style={{ marginTop: 0 }}>
        This server manages API tokens from its command line, where only its administrator can reach them:
      </p>
      <table class="data">
        <tbody>
          <tr>
            <td>
              <code>visiontrain token create --name NAME</code>
            </td>
            <td>a new token (shown once: copy it)</td>
          </tr>
          <tr>
            <td>
              <code>visiontrain token list --all</code>
            </td>
            <td>the tokens (revoked ones too), with when each was last used</td>
          </tr>
          <tr>
            <td>
              <code>visiontrain token revoke ID</code>
            </td>
            <td>stop a token working at once</td>
          </tr>
        </tbody>
      </table>
    </div>
  );
}

function Identity() {
  const me = useAsync(() => get("/me"), []);
  if (!me.data) return null;
  return (
    <div class="notice" data-testid="identity">
      Signed in with the token <b>{me.data.token_name}</b> of the organisation <b>{me.data.organization}</b>; it is kept in this
      browser until you sign out.
    </div>
  );
}

export function TokensPage() {
  const tokens = useAsync(() => get("/tokens"), []);
  const managedByCli = tokens.error && (tokens.error.status === 404 || tokens.error.status === 405);
  const [name, setName] = useState("");
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  const list = tokens.data && (tokens.data.items || tokens.data);

  async function create(e) {
    e.preventDefault();
    setError(null);
    if (!name.trim()) return setError(new Error("Name the token after where it will be used, e.g. 'laptop' or 'CI'."));
    try {
      setCreated(await post("/tokens", { name: name.trim() }));
      setName("");
      tokens.reload();
    } catch (err) {
      setError(err);
    }
  }
  async function revoke(t) {
    if (!confirm(`Revoke the token "${t.name}"? Anything using it stops working at once.`)) return;
    try {
      await del(`/tokens/${t.id}`);
      tokens.reload();
    } catch (err) {
      setError(err);
    }
  }

  return (
    <main class="page">
      <div class="page-head">
        <div>
          <h1>API tokens</h1>
          <p class="sub">Tokens let scripts, the CLI and this studio use the API. Only a hash is stored: copy a new token when it is shown.</p>
        </div>
      </div>
      <Identity />
      {managedByCli ? (
        <CliTokens />
      ) : (
        <TokenList tokens={tokens} list={list} name={name} setName={setName} create={create} created={created} revoke={revoke} error={error} />
      )}
    </main>
  );
}

function TokenList({ tokens, list, name, setName, create, created, revoke, error }) {
  return (
    <>
      <form class="card" onSubmit={create}>
        <div class="form-row">
          <div style={{ flex: "1 1 260px" }}>
            <label for="token-name">New token name</label>
            <input id="token-name" type="text" value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="e.g. laptop" />
          </div>
          <button class="btn primary" type="submit">
            Create token
          </button>
        </div>
        {created && (
          <div class="notice" data-testid="new-token">
            <p>
              Token <b>{created.name}</b> created. Copy it now: it will not be shown again.
            </p>
            <div class="token-secret">{created.token || created.secret}</div>
          </div>
        )}
      </form>
      <ErrorNote error={error || tokens.error} onRetry={tokens.error ? tokens.reload : undefined} />
      <h2>Tokens</h2>
      {tokens.loading && !list ? (
        <Spinner />
      ) : !list || list.length === 0 ? (
        <Empty title="No tokens" />
      ) : (
        <table class="data" data-testid="tokens-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Starts with</th>
              <th>Created</th>
              <th>Last used</th>
              <th>Status</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((t) => (
              <tr key={t.id}>
                <td>{t.name}</td>
                <td>
                  <code>{t.prefix}…</code>
                </td>
                <td>{fmt.date(t.created_at)}</td>
                <td>{t.last_used_at ? fmt.date(t.last_used_at) : "never"}</td>
                <td>{t.revoked_at ? <span class="badge failed">revoked</span> : <span class="badge succeeded">active</span>}</td>
                <td class="num">
                  {!t.revoked_at && (
                    <button class="btn small danger" onClick={() => revoke(t)}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
