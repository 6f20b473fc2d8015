import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { authApi, data } from '../api/client';
import { session } from '../api/session';
import { ErrorBox, Field, Notice, Page } from '../components';
import { useAction, useSession } from '../lib/hooks';

/** The code of a mailed link (`/account/verify-email#code=...`): in the fragment, never sent to a server. */
export function codeFrom(hash: string, search: string): string {
  return new URLSearchParams(hash.replace(/^#/, '')).get('code') ?? new URLSearchParams(search).get('code') ?? '';
}

function mailedCode(): string {
  return codeFrom(window.location.hash, window.location.search);
}

/** Only a path of this app (never another site) after sign-in. */
export function safeNext(next: string | undefined): string {
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/learning';
}

export function LoginPage() {
  const { query, route } = useLocation();
  const s = useSession();
  useEffect(() => {
    if (s.user) route(safeNext(query.next), true); // already signed in (the refresh cookie)
  }, [s.user]);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const action = useAction();
  return (
    <Page title="Sign in">
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void action.run(async () => {
            await session.login(email.trim(), password);
            route(safeNext(query.next));
          });
        }}
      >
        <Field label="E-mail" name="email" type="email" value={email} onInput={setEmail} required autoComplete="username" />
        <Field label="Password" name="password" type="password" value={password} onInput={setPassword} required autoComplete="current-password" />
        <ErrorBox message={action.error} />
        <button type="submit" disabled={action.busy}>
          Sign in
        </button>
      </form>
      <p>
        <a href="/forgot-password">Forgot your password?</a> · <a href="/register">Create an account</a>
      </p>
    </Page>
  );
}

export function RegisterPage() {
  const { route } = useLocation();
  const [fullName, setFullName] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const action = useAction();
  return (
    <Page title="Create an account">
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void action.run(async () => {
            await data(authApi.POST('/register', { body: { email: email.trim(), password, full_name: fullName.trim() } }));
            await session.login(email.trim(), password);
            route('/account/verify-email');
          });
        }}
      >
        <Field label="Full name" name="full_name" value={fullName} onInput={setFullName} required autoComplete="name" />
        <Field label="E-mail" name="email" type="email" value={email} onInput={setEmail} required autoComplete="email" />
        <Field
          label="Password"
          name="password"
          type="password"
          value={password}
          onInput={setPassword}
          required
          minLength={8}
          autoComplete="new-password"
          hint="8 characters or more; very common passwords are refused."
        />
        <ErrorBox message={action.error} />
        <button type="submit" disabled={action.busy}>
          Register
        </button>
      </form>
    </Page>
  );
}

export function VerifyEmailPage() {
  const [code, setCode] = useState(mailedCode);
  const verify = useAction();
  const resend = useAction();
  return (
    <Page title="Verify your e-mail">
      <p>We sent a code to your e-mail address. Enter it here.</p>
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void verify.run(async () => {
            await data(authApi.POST('/verify-email', { body: { code: code.trim() } }));
            await session.reloadUser().catch(() => undefined);
            return 'Your e-mail address is verified.';
          });
        }}
      >
        <Field label="Verification code" name="code" value={code} onInput={setCode} required autoComplete="one-time-code" />
        <ErrorBox message={verify.error} />
        <Notice message={verify.done} />
        <button type="submit" disabled={verify.busy}>
          Verify
        </button>
      </form>
      {session.user && (
        <p>
          <button
            type="button"
            class="link"
            disabled={resend.busy}
            onClick={() =>
              resend.run(async () => {
                await data(authApi.POST('/verify-email/resend'));
                return 'A new code is on its way.';
              })
            }
          >
            Send a new code
          </button>
        </p>
      )}
      <ErrorBox message={resend.error} />
      <Notice message={resend.done} />
    </Page>
  );
}

export function ForgotPasswordPage() {
  const [email, setEmail] = useState('');
  const action = useAction();
  return (
    <Page title="Forgot your password">
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void action.run(async () => {
            await data(authApi.POST('/password/forgot', { body: { email: email.trim() } }));
            return 'If an account uses this address, a reset code is on its way.';
          });
        }}
      >
        <Field label="E-mail" name="email" type="email" value={email} onInput={setEmail} required autoComplete="email" />
        <ErrorBox message={action.error} />
        <Notice message={action.done} />
        <button type="submit" disabled={action.busy}>
          Send a reset code
        </button>
      </form>
      <p>
        <a href="/account/reset-password">I have a code</a>
      </p>
    </Page>
  );
}

export function ResetPasswordPage() {
  const [code, setCode] = useState(mailedCode);
  const [password, setPassword] = useState('');
  const action = useAction();
  return (
    <Page title="Choose a new password">
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void action.run(async () => {
            await data(authApi.POST('/password/reset', { body: { code: code.trim(), new_password: password } }));
            session.clear();
            return 'Your password is changed and every session is signed out. Sign in again.';
          });
        }}
      >
        <Field label="Reset code" name="code" value={code} onInput={setCode} required autoComplete="one-time-code" />
        <Field label="New password" name="new_password" type="password" value={password} onInput={setPassword} required minLength={8} autoComplete="new-password" />
        <ErrorBox message={action.error} />
        <Notice message={action.done} />
        <button type="submit" disabled={action.busy}>
          Change password
        </button>
      </form>
      {action.done && (
        <p>
          <a href="/login">Sign in</a>
        </p>
      )}
    </Page>
  );
}

export function ConfirmEmailChangePage() {
  const [code, setCode] = useState(mailedCode);
  const action = useAction();
  return (
    <Page title="Confirm your new e-mail address">
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void action.run(async () => {
            await data(authApi.POST('/email/change/confirm', { body: { code: code.trim() } }));
            await session.reloadUser().catch(() => undefined);
            return 'Your e-mail address is changed.';
          });
        }}
      >
        <Field label="Confirmation code" name="code" value={code} onInput={setCode} required autoComplete="one-time-code" />
        <ErrorBox message={action.error} />
        <Notice message={action.done} />
        <button type="submit" disabled={action.busy}>
          Confirm
        </button>
      </form>
    </Page>
  );
}
