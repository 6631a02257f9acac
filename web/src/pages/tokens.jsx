// API tokens: list, create (the secret is shown once), revoke.
import { useState } from "preact/hooks";
import { auth, del, get, post } from "../api.js";
import { navigate } from "../router.js";
import { Empty, ErrorNote, Spinner, fmt, useAsync } from "../components/ui.jsx";

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
  // Revoked tokens stay listed (marked), so that a person sees what stopped working and when.
  const tokens = useAsync(() => get("/tokens", { include_revoked: true }), []);
  const [name, setName] = useState("");
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  const list = tokens.data;

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
    const question = t.current
      ? `"${t.name}" is the token this browser is signed in with. Revoke it? You will be signed out, and anything else using it stops working at once.`
      : `Revoke the token "${t.name}"? Anything using it stops working at once.`;
    if (!confirm(question)) return;
    setError(null);
    try {
      const revoked = await del(`/tokens/${t.id}`);
      if (revoked.current) {
        auth.clear();
        return navigate("/login");
      }
      if (created && created.id === t.id) setCreated(null);
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
          <p class="sub">
            Tokens let scripts, the CLI and this studio use the API; each sees this organisation's projects only. Only a hash is stored: copy a
            new token when it is shown.
          </p>
        </div>
      </div>
      <Identity />
      <TokenList tokens={tokens} list={list} name={name} setName={setName} create={create} created={created} revoke={revoke} error={error} />
    </main>
  );
}

function NewToken({ created }) {
  const [copied, setCopied] = useState(false);
  // The clipboard API exists on https and localhost only; elsewhere the secret is selected on click.
  const canCopy = typeof navigator !== "undefined" && navigator.clipboard && window.isSecureContext;
  async function copy() {
    await navigator.clipboard.writeText(created.token);
    setCopied(true);
  }
  return (
    <div class="notice" data-testid="new-token">
      <p style={{ marginTop: 0 }}>
        Token <b>{created.name}</b> created. Copy it now: it will not be shown again.
      </p>
      <div class="token-row">
        <code class="token-secret" data-testid="new-token-secret">
          {created.token}
        </code>
        {canCopy && (
          <button type="button" class="btn small" onClick={copy}>
            {copied ? "Copied" : "Copy"}
          </button>
        )}
      </div>
    </div>
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
        {created && <NewToken created={created} />}
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
              <tr key={t.id} data-testid="token-row">
                <td>
                  {t.name}
                  {t.current && <span class="pill">this browser</span>}
                </td>
                <td>
                  <code>{t.prefix}…</code>
                </td>
                <td>{fmt.date(t.created_at)}</td>
                <td>{t.last_used_at ? fmt.date(t.last_used_at) : "never"}</td>
                <td>{t.revoked_at ? <span class="badge failed">revoked</span> : <span class="badge succeeded">active</span>}</td>
                <td class="num">
                  {!t.revoked_at && (
                    <button class="btn small danger" onClick={() => revoke(t)} aria-label={`Revoke ${t.name}`}>
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
