// Sign in with an API token (printed by `visiontrain serve` on first start, or made on the tokens page).
import { useState } from "preact/hooks";
import { auth, get } from "../api.js";
import { navigate } from "../router.js";

export function LoginPage({ query }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function submit(e) {
    e.preventDefault();
    if (!token.trim()) return setError("Paste a token first.");
    setBusy(true);
    setError(null);
    auth.set(token);
    try {
      await get("/me");
      navigate(query.next || "/");
    } catch (err) {
      auth.clear();
      setError(err.status === 401 ? "This token is not valid (revoked, or mistyped). Check it and try again." : err.message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="login">
      <form class="card" onSubmit={submit}>
        <h1>
          <span class="logo">◆</span> visiontrain
        </h1>
        <p>Train image models in your browser. Sign in with an API token.</p>
        <label for="token">API token</label>
        <input id="token" type="password" autocomplete="off" value={token} onInput={(e) => setToken(e.currentTarget.value)} placeholder="vt_…" autofocus />
        <p class="help">
          <code>visiontrain serve</code> prints a token the first time it starts; <code>visiontrain token create</code> makes another.
        </p>
        {error && <p class="field-error" role="alert">{error}</p>}
        <button class="btn primary" type="submit" disabled={busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
