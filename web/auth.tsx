// Sign up and sign in: the server sets the httpOnly session cookie; the page never sees a token.
/// <reference lib="dom" />
import { Field } from "./field.tsx";
import { useState } from "preact/hooks";
import { api, explain, ok } from "./session.ts";
import type { Me } from "./main.tsx";

export function AuthPage(props: { onSignedIn: (user: Me) => void }) {
  const [mode, setMode] = useState<"signup" | "login">("signup");
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  async function submit(event: Event) {
    event.preventDefault();
    setError("");
    try {
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
      <form onSubmit={submit} aria-label={mode === "signup" ? "Sign up" : "Sign in"}>
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
        {error && <p role="alert" class="error">{error}</p>}
        <button type="submit">{mode === "signup" ? "Sign up" : "Sign in"}</button>
      </form>
      <button
        type="button"
        class="link"
        onClick={() => setMode(mode === "signup" ? "login" : "signup")}
      >
        {mode === "signup" ? "I have an account: sign in" : "New here: sign up"}
      </button>
    </main>
  );
}
