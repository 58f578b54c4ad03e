// Sign up and sign in: the server sets the httpOnly session cookie; the page never sees a token.
/// <reference lib="dom" />
import { Field } from "./field.tsx";
import { useEffect, useState } from "preact/hooks";
import { api, done, explain, ok } from "./session.ts";
import type { Me } from "./main.tsx";

export function AuthPage(props: { onSignedIn: (user: Me) => void }) {
  const [mode, setMode] = useState<"signup" | "login" | "forgot">("signup");
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  const [notice, setNotice] = useState("");
  async function submit(event: Event) {
    event.preventDefault();
    setError("");
    try {
      if (mode === "forgot") {
        const answer = await ok(api.api.auth["forgot-password"].$post({ json: { email } }));
        setNotice(answer.message);
        return;
      }
      const answer = mode === "signup"
        ? await ok(api.api.auth.signup.$post({ json: { name, email, password } }))
        : await ok(api.api.auth.login.$post({ json: { email, password } }));
      props.onSignedIn(answer.user);
    } catch (failure) {
      setError(explain(failure));
    }
  }
  return (
    <main class="auth">
      <h1>Convene</h1>
      <p>Developer networking, chat, calls and flash sales.</p>
      <form onSubmit={submit} aria-label={TITLES[mode]}>
        {mode === "signup" && (
          <Field label="Name" name="name" required value={name} onValue={setName} />
        )}
        <Field
          label="Email"
          name="email"
          type="email"
          required
          autocomplete="email"
          value={email}
          onValue={setEmail}
        />
        {mode !== "forgot" && (
          <Field
            label="Password"
            name="password"
            type="password"
            required
            minLength={8}
            autocomplete={mode === "signup" ? "new-password" : "current-password"}
            value={password}
            onValue={setPassword}
          />
        )}
        {error && <p role="alert" class="error">{error}</p>}
        {notice && <p role="status">{notice}</p>}
        <button type="submit">{SUBMITS[mode]}</button>
      </form>
      <button
        type="button"
        class="link"
        onClick={() => setMode(mode === "signup" ? "login" : "signup")}
      >
        {mode === "signup" ? "I have an account: sign in" : "New here: sign up"}
      </button>
      {mode === "login" && (
        <button type="button" class="link" onClick={() => setMode("forgot")}>
          Forgot your password?
        </button>
      )}
    </main>
  );
}

const TITLES = { signup: "Sign up", login: "Sign in", forgot: "Reset your password" } as const;
const SUBMITS = { signup: "Sign up", login: "Sign in", forgot: "Email me a link" } as const;

/** The page a reset link opens: a new password for the account, with the link's token. */
export function ResetPasswordPage(props: { token: string }) {
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  const [reset, setReset] = useState(false);
  async function submit(event: Event) {
    event.preventDefault();
    setError("");
    try {
      await done(api.api.auth["reset-password"].$post({
        json: { token: props.token, newPassword: password },
      }));
      setReset(true);
    } catch (failure) {
      setError(explain(failure));
    }
  }
  return (
    <main class="auth">
      <h1>Convene</h1>
      {reset
        ? (
          <p role="status">
            Your password is reset, and every session was signed out. <a href="#/">Sign in</a>{" "}
            with the new one.
          </p>
        )
        : (
          <form onSubmit={submit} aria-label="Choose a new password">
            <Field
              label="New password"
              name="password"
              type="password"
              required
              minLength={8}
              autocomplete="new-password"
              value={password}
              onValue={setPassword}
            />
            {error && <p role="alert" class="error">{error}</p>}
            <button type="submit">Set the new password</button>
          </form>
        )}
    </main>
  );
}

/** The page a confirmation link opens: it confirms the address, signed in or not. */
export function VerifyEmailPage(props: { token: string }) {
  const [state, setState] = useState<"confirming" | "confirmed" | string>("confirming");
  useEffect(() => {
    ok(api.api.auth["verify-email"].$post({ json: { token: props.token } }))
      .then(({ user }) => setState(`confirmed:${user.email}`))
      .catch((failure) => setState(explain(failure)));
  }, [props.token]);
  return (
    <main class="auth">
      <h1>Convene</h1>
      {state === "confirming" && <p>Confirming your address…</p>}
      {state.startsWith("confirmed:") && (
        <p role="status">
          {state.slice("confirmed:".length)} is confirmed. <a href="/">Go to Convene</a>
        </p>
      )}
      {state !== "confirming" && !state.startsWith("confirmed:") && (
        <p role="alert" class="error">{state}</p>
      )}
    </main>
  );
}
