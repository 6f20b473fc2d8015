import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { authApi, data } from '../api/client';
import { ErrorBox, Field, Loading, Notice, Page } from '../components';
import { formatDate } from '../lib/format';
import { useAction, useLoad, useSession } from '../lib/hooks';

/** The export (a zip the server built) as a file the browser downloads. */
function download(name: string, body: Blob): void {
  const url = URL.createObjectURL(body);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function AccountPage() {
  const s = useSession();
  const { route } = useLocation();
  const [fullName, setFullName] = useState(s.user?.full_name ?? '');
  const [password, setPassword] = useState('');
  const sessions = useLoad(() => data(authApi.GET('/me/sessions')), []);
  const profile = useAction();
  const sessionAction = useAction();
  const exportAction = useAction();
  const erase = useAction();
  return (
    <Page title="Account">
      <section aria-labelledby="profile-h">
        <h2 id="profile-h">Profile</h2>
        <p>
          {s.user?.email} {s.user?.email_verified ? '(verified)' : <a href="/account/verify-email">(verify your e-mail)</a>} · roles:{' '}
          {s.user?.roles.join(', ')}
        </p>
        <form
          class="form"
          onSubmit={(e) => {
            e.preventDefault();
            void profile.run(async () => {
              await data(authApi.PATCH('/me', { body: { full_name: fullName.trim() } }));
              await s.reloadUser();
              return 'Saved.';
            });
          }}
        >
          <Field label="Full name" name="full_name" value={fullName} onInput={setFullName} required autoComplete="name" />
          <ErrorBox message={profile.error} />
          <Notice message={profile.done} />
          <button type="submit" disabled={profile.busy}>
            Save
          </button>
        </form>
      </section>

      <section aria-labelledby="sessions-h">
        <h2 id="sessions-h">Active sessions</h2>
        <ErrorBox message={sessions.error ?? sessionAction.error} />
        {sessions.loading && !sessions.value && <Loading />}
        <ul class="plain">
          {(sessions.value ?? []).map((item) => (
            <li key={item.id}>
              {item.user_agent ?? 'unknown device'} · {item.ip ?? ''} · last used {formatDate(item.last_used_at)}
              {item.current ? (
                <strong> (this browser)</strong>
              ) : (
                <button
                  type="button"
                  class="small"
                  onClick={() =>
                    sessionAction.run(async () => {
                      await data(authApi.DELETE('/me/sessions/{session_id}', { params: { path: { session_id: item.id } } }));
                      sessions.reload();
                    })
                  }
                >
                  Sign out
                </button>
              )}
            </li>
          ))}
        </ul>
        <button
          type="button"
          disabled={sessionAction.busy}
          onClick={() =>
            sessionAction.run(async () => {
              await data(authApi.POST('/logout-all'));
              await s.logout().catch(() => undefined);
              route('/login');
            })
          }
        >
          Sign out everywhere
        </button>
      </section>

      <section aria-labelledby="export-h">
        <h2 id="export-h">Your data</h2>
        <button
          type="button"
          disabled={exportAction.busy}
          onClick={() =>
            exportAction.run(async () => {
              download('triple-academy-export.zip', await data(authApi.GET('/me/export', { parseAs: 'blob' })));
              return 'Export downloaded.';
            })
          }
        >
          Download my data
        </button>
        <ErrorBox message={exportAction.error} />
        <Notice message={exportAction.done} />
      </section>

      <section aria-labelledby="delete-h">
        <h2 id="delete-h">Delete account</h2>
        <p>This erases your account and personal data everywhere. Courses you bought are lost.</p>
        <form
          class="form"
          onSubmit={(e) => {
            e.preventDefault();
            void erase.run(async () => {
              if (!window.confirm('Delete your account for good?')) return;
              await data(authApi.DELETE('/me', { body: { password } }));
              s.clear();
              route('/');
            });
          }}
        >
          <Field label="Password to confirm" name="delete_password" type="password" value={password} onInput={setPassword} required autoComplete="current-password" />
          <ErrorBox message={erase.error} />
          <button type="submit" class="danger" disabled={erase.busy}>
            Delete my account
          </button>
        </form>
      </section>
    </Page>
  );
}
