import { useState } from 'preact/hooks';
import { authApi, billingApi, catalogApi, data, idempotencyKey, playbackApi, type BillingPaths } from '../api/client';
import type { components as BillingComponents } from '../api/billing';
import { Empty, ErrorBox, Field, Loading, Notice, Page, Pager } from '../components';
import { formatDate, formatMoney, parseAmount } from '../lib/format';
import { useAction, useLoad } from '../lib/hooks';

const TABS = ['Review', 'Users', 'Orders', 'Coupons', 'Enrollments', 'Audit', 'Watermarks', 'Evidence'] as const;
type Tab = (typeof TABS)[number];
type AdminOrder = BillingComponents['schemas']['AdminOrderRead'];
type OrderStatus = NonNullable<NonNullable<BillingPaths['/admin/orders']['get']['parameters']['query']>['status']>;
const ORDER_STATUSES: OrderStatus[] = ['pending', 'paid', 'partially_refunded', 'refunded', 'failed', 'expired'];
const ROLES = ['student', 'instructor', 'admin'] as const;

function Review() {
  const courses = useLoad(() => data(catalogApi.GET('/me/courses', { params: { query: { status: 'in_review', page_size: 100 } } })), []);
  const action = useAction();
  return (
    <>
      <ErrorBox message={courses.error ?? action.error} />
      <Notice message={action.done} />
      {courses.loading && !courses.value && <Loading />}
      {courses.value && courses.value.items.length === 0 && <Empty>No course waits for review.</Empty>}
      <ul class="plain">
        {(courses.value?.items ?? []).map((c) => (
          <li key={c.id}>
            <a href={`/studio/courses/${c.id}`}>{c.title}</a> <span class="muted">{formatMoney(c.price_amount, c.currency)}</span>{' '}
            <button
              type="button"
              class="small"
              onClick={() =>
                action.run(async () => {
                  await data(catalogApi.POST('/courses/{course_id}/publish', { params: { path: { course_id: c.id } } }));
                  courses.reload();
                  return `Published ${c.title}.`;
                })
              }
            >
              Publish {c.title}
            </button>{' '}
            <button
              type="button"
              class="small"
              onClick={() =>
                action.run(async () => {
                  await data(catalogApi.POST('/courses/{course_id}/status', { params: { path: { course_id: c.id } }, body: { status: 'draft' } }));
                  courses.reload();
                  return `${c.title} went back to its author.`;
                })
              }
            >
              Send back
            </button>
          </li>
        ))}
      </ul>
    </>
  );
}

function Users() {
  const [q, setQ] = useState('');
  const [search, setSearch] = useState('');
  const [page, setPage] = useState(1);
  const users = useLoad(() => data(authApi.GET('/admin/users', { params: { query: { q: search || undefined, page, page_size: 20 } } })), [search, page]);
  const action = useAction();
  return (
    <>
      <form class="search" role="search" onSubmit={(e) => (e.preventDefault(), setSearch(q.trim()), setPage(1))}>
        <label for="user-q">Find users</label>
        <input id="user-q" type="search" value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} />
        <button type="submit">Search</button>
      </form>
      <ErrorBox message={users.error ?? action.error} />
      <Notice message={action.done} />
      {users.loading && !users.value && <Loading />}
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Users</caption>
          <thead>
            <tr>
              <th scope="col">User</th>
              <th scope="col">Roles</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {(users.value?.items ?? []).map((u) => (
              <tr key={u.id}>
                <td>
                  {u.full_name}
                  <br />
                  <small>{u.email}</small>
                </td>
                <td>
                  {ROLES.map((role) => (
                    <label class="check" key={role}>
                      <input
                        type="checkbox"
                        checked={u.roles.includes(role)}
                        onChange={(e) =>
                          action.run(async () => {
                            const on = (e.target as HTMLInputElement).checked;
                            const roles = on ? [...new Set([...u.roles, role])] : u.roles.filter((r) => r !== role);
                            await data(
                              authApi.PUT('/admin/users/{user_id}/roles', {
                                params: { path: { user_id: u.id } },
                                body: { roles: roles as (typeof ROLES)[number][] },
                              }),
                            );
                            users.reload();
                          })
                        }
                      />{' '}
                      {role}
                    </label>
                  ))}
                </td>
                <td>
                  {u.is_active ? 'active' : 'disabled'}{' '}
                  <button
                    type="button"
                    class="small"
                    onClick={() =>
                      action.run(async () => {
                        const path = { params: { path: { user_id: u.id } } };
                        await data(u.is_active ? authApi.POST('/admin/users/{user_id}/disable', path) : authApi.POST('/admin/users/{user_id}/enable', path));
                        users.reload();
                      })
                    }
                  >
                    {u.is_active ? 'Disable' : 'Enable'}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {users.value && <Pager page={page} pageSize={20} total={users.value.total} onPage={setPage} />}
    </>
  );
}

function RefundForm({ order, onDone }: { order: AdminOrder; onDone: (message: string) => void }) {
  const [amount, setAmount] = useState('');
  const [reason, setReason] = useState('');
  const action = useAction();
  const left = order.amount - order.amount_refunded;
  return (
    <form
      class="inline-form"
      aria-label={`Refund order of ${order.course_title}`}
      onSubmit={(e) => {
        e.preventDefault();
        void action.run(async () => {
          const partial = amount.trim() ? parseAmount(amount, order.currency) : null;
          if (amount.trim() && partial === null) throw new Error('The amount is a number such as 10 or 10.50');
          await data(
            billingApi.POST('/orders/{order_id}/refund', {
              params: { path: { order_id: order.order_id }, header: { 'Idempotency-Key': idempotencyKey() } },
              body: { reason: reason.trim() || 'refunded by an admin', amount: partial },
            }),
          );
          onDone(`Refund of ${order.course_title} (order ${order.order_id}) sent to the provider.`);
        });
      }}
    >
      <label for={`amount-${order.order_id}`}>Amount (empty: all {formatMoney(left, order.currency)})</label>
      <input id={`amount-${order.order_id}`} value={amount} onInput={(e) => setAmount((e.target as HTMLInputElement).value)} size={8} />
      <label for={`reason-${order.order_id}`}>Reason</label>
      <input id={`reason-${order.order_id}`} value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
      <button type="submit" class="small" disabled={action.busy}>
        Refund
      </button>
      <ErrorBox message={action.error} />
    </form>
  );
}

function Orders() {
  const [notice, setNotice] = useState<string | null>(null);
  const [status, setStatus] = useState<OrderStatus | ''>('');
  const [page, setPage] = useState(1);
  const orders = useLoad(() => data(billingApi.GET('/admin/orders', { params: { query: { status: status || undefined, page, page_size: 20 } } })), [status, page]);
  return (
    <>
      <label for="order-status">Status</label>{' '}
      <select id="order-status" value={status} onChange={(e) => (setStatus((e.target as HTMLSelectElement).value as OrderStatus | ''), setPage(1))}>
        <option value="">all</option>
        {ORDER_STATUSES.map((s) => (
          <option key={s} value={s}>
            {s}
          </option>
        ))}
      </select>
      <ErrorBox message={orders.error} />
      <Notice message={notice} />
      {orders.loading && <Loading />}
      {orders.value?.totals.map((t) => (
        <p key={t.currency} class="meta">
          {t.orders} orders · gross {formatMoney(t.gross_amount, t.currency)} · refunded {formatMoney(t.refunded_amount, t.currency)} · net{' '}
          {formatMoney(t.net_amount, t.currency)}
        </p>
      ))}
      {orders.value && orders.value.items.length === 0 && <Empty>No orders.</Empty>}
      <ul class="plain orders">
        {(orders.value?.items ?? []).map((o) => (
          <li key={o.order_id}>
            <strong>{o.course_title}</strong> · {formatMoney(o.amount, o.currency)} · <span data-testid="order-status">{o.status}</span> ·{' '}
            {formatDate(o.created_at)} · order <code>{o.order_id}</code> · user {o.user_id.slice(0, 8)}
            {o.amount_refunded > 0 && <> · refunded {formatMoney(o.amount_refunded, o.currency)}</>}
            {['paid', 'partially_refunded'].includes(o.status) && <RefundForm order={o} onDone={(message) => (setNotice(message), orders.reload())} />}
          </li>
        ))}
      </ul>
      {orders.value && <Pager page={page} pageSize={20} total={orders.value.total} onPage={setPage} />}
    </>
  );
}

function Coupons() {
  const coupons = useLoad(() => data(billingApi.GET('/admin/coupons')), []);
  const [code, setCode] = useState('');
  const [percent, setPercent] = useState('10');
  const action = useAction();
  return (
    <>
      <form
        class="form inline-form"
        aria-label="New coupon"
        onSubmit={(e) => {
          e.preventDefault();
          void action.run(async () => {
            await data(billingApi.POST('/admin/coupons', { body: { code: code.trim(), kind: 'percent', percent_off: Number(percent) } }));
            setCode('');
            coupons.reload();
            return 'Coupon created.';
          });
        }}
      >
        <Field label="Code" name="coupon_code" value={code} onInput={setCode} required />
        <Field label="Percent off" name="percent_off" type="number" value={percent} onInput={setPercent} required />
        <button type="submit">Create coupon</button>
      </form>
      <ErrorBox message={coupons.error ?? action.error} />
      <Notice message={action.done} />
      {coupons.value && coupons.value.length === 0 && <Empty>No coupons.</Empty>}
      <ul class="plain">
        {(coupons.value ?? []).map((c) => (
          <li key={c.coupon_id}>
            <code>{c.code}</code> · {c.kind === 'percent' ? `${c.percent_off}%` : formatMoney(c.amount_off ?? 0, c.currency ?? 'EUR')} · used {c.redemptions}
            {c.max_redemptions ? `/${c.max_redemptions}` : ''} · {c.active ? 'active' : 'inactive'}{' '}
            <button
              type="button"
              class="small"
              onClick={() =>
                action.run(async () => {
                  await data(billingApi.PUT('/admin/coupons/{coupon_id}/active', { params: { path: { coupon_id: c.coupon_id } }, body: { active: !c.active } }));
                  coupons.reload();
                })
              }
            >
              {c.active ? 'Deactivate' : 'Activate'}
            </button>
          </li>
        ))}
      </ul>
    </>
  );
}

function Enrollments() {
  const [userId, setUserId] = useState('');
  const [courseId, setCourseId] = useState('');
  const [reason, setReason] = useState('');
  const audit = useLoad(() => data(catalogApi.GET('/admin/enrollments/audit', { params: { query: { page_size: 20 } } })), []);
  const action = useAction();
  const change = (kind: 'grant' | 'revoke') =>
    action.run(async () => {
      const result = await data(
        catalogApi.POST('/admin/enrollments/{action}', {
          params: { path: { action: kind } },
          body: { user_id: userId.trim(), course_id: courseId.trim(), reason: reason.trim() },
        }),
      );
      audit.reload();
      return result.changed ? `Enrollment ${kind === 'grant' ? 'granted' : 'revoked'}.` : 'Nothing to change.';
    });
  return (
    <>
      <form class="form" aria-label="Grant or revoke an enrollment" onSubmit={(e) => e.preventDefault()}>
        <Field label="User id" name="enroll_user" value={userId} onInput={setUserId} required />
        <Field label="Course id" name="enroll_course" value={courseId} onInput={setCourseId} required />
        <Field label="Reason" name="enroll_reason" value={reason} onInput={setReason} required />
        <button type="button" onClick={() => change('grant')} disabled={action.busy}>
          Grant
        </button>{' '}
        <button type="button" class="danger" onClick={() => change('revoke')} disabled={action.busy}>
          Revoke
        </button>
      </form>
      <ErrorBox message={action.error ?? audit.error} />
      <Notice message={action.done} />
      <h3>Recent changes</h3>
      <ul class="plain">
        {(audit.value?.items ?? []).map((a) => (
          <li key={a.id}>
            {formatDate(a.at)} · {a.action} · user {a.user_id?.slice(0, 8)} · course {a.course_id.slice(0, 8)} · {a.reason}
          </li>
        ))}
      </ul>
    </>
  );
}

function Audit() {
  const [page, setPage] = useState(1);
  const audit = useLoad(() => data(authApi.GET('/admin/audit', { params: { query: { page, page_size: 25 } } })), [page]);
  return (
    <>
      <ErrorBox message={audit.error} />
      {audit.loading && !audit.value && <Loading />}
      <ul class="plain">
        {(audit.value?.items ?? []).map((a) => (
          <li key={a.id}>
            {formatDate(a.occurred_at)} · <strong>{a.action}</strong> · {a.outcome} · {a.ip ?? ''}
          </li>
        ))}
      </ul>
      {audit.value && <Pager page={page} pageSize={25} total={audit.value.total} onPage={setPage} />}
    </>
  );
}

function Watermarks() {
  const [code, setCode] = useState('');
  const [result, setResult] = useState<Awaited<ReturnType<typeof lookup>> | null>(null);
  const action = useAction();
  const lookup = (watermark: string) => data(playbackApi.GET('/admin/watermarks/{watermark}', { params: { path: { watermark } } }));
  return (
    <>
      <form
        class="search"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          void action.run(async () => setResult(await lookup(code.trim())));
        }}
      >
        <label for="watermark-code">Code seen on the recording</label>
        <input id="watermark-code" value={code} onInput={(e) => setCode((e.target as HTMLInputElement).value)} required />
        <button type="submit">Look up</button>
      </form>
      <ErrorBox message={action.error} />
      {result && result.sessions.length === 0 && <Empty>No session carries this code.</Empty>}
      <ul class="plain">
        {(result?.sessions ?? []).map((r) => (
          <li key={r.session_id}>
            {formatDate(r.issued_at)} · user {r.user_id ?? `erased ${formatDate(r.user_erased_at)}`} · course{' '}
            <a href={`/courses/${r.course_id}`}>{r.course_id}</a> · session {r.session_id}
          </li>
        ))}
      </ul>
    </>
  );
}

/** One order's or user's story across the services, oldest first, each step with its request id. */
function Evidence() {
  const [subject, setSubject] = useState<'orders' | 'users'>('orders');
  const [id, setId] = useState('');
  const [trail, setTrail] = useState<Awaited<ReturnType<typeof load>> | null>(null);
  const action = useAction();
  const load = (kind: 'orders' | 'users', value: string) =>
    kind === 'orders'
      ? data(billingApi.GET('/admin/evidence/orders/{order_id}', { params: { path: { order_id: value } } }))
      : data(billingApi.GET('/admin/evidence/users/{user_id}', { params: { path: { user_id: value } } }));
  return (
    <>
      <form
        class="search"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          void action.run(async () => setTrail(await load(subject, id.trim())));
        }}
      >
        <label for="evidence-subject">Trail of</label>
        <select id="evidence-subject" value={subject} onChange={(e) => setSubject((e.target as HTMLSelectElement).value as 'orders' | 'users')}>
          <option value="orders">an order</option>
          <option value="users">a user</option>
        </select>
        <label for="evidence-id">Id</label>
        <input id="evidence-id" value={id} onInput={(e) => setId((e.target as HTMLInputElement).value)} required />
        <button type="submit">Show</button>
      </form>
      <ErrorBox message={action.error} />
      {trail && (
        <p>
          {trail.parts.map((p) => `${p.service}: ${p.status} (${p.entries})`).join(' · ')}
          {trail.partial && <strong> · partial</strong>}
        </p>
      )}
      {trail && trail.entries.length === 0 && <Empty>Nothing recorded.</Empty>}
      <ol class="plain">
        {(trail?.entries ?? []).map((e, i) => (
          <li key={i}>
            <time dateTime={e.at}>{e.at}</time> · {e.service} · <strong>{e.kind}</strong> · request {e.request_id ?? '-'} ·{' '}
            <code>{JSON.stringify(e.detail)}</code>
          </li>
        ))}
      </ol>
    </>
  );
}

const PANELS: Record<Tab, () => preact.JSX.Element> = { Review, Users, Orders, Coupons, Enrollments, Audit, Watermarks, Evidence };

export function AdminPage() {
  const [tab, setTab] = useState<Tab>('Review');
  const Panel = PANELS[tab];
  return (
    <Page title="Admin console">
      <div role="tablist" aria-label="Admin sections" class="tabs">
        {TABS.map((t) => (
          <button key={t} type="button" role="tab" id={`tab-${t}`} aria-selected={t === tab} aria-controls="admin-panel" onClick={() => setTab(t)}>
            {t}
          </button>
        ))}
      </div>
      <div role="tabpanel" id="admin-panel" aria-labelledby={`tab-${tab}`}>
        <Panel />
      </div>
    </Page>
  );
}
