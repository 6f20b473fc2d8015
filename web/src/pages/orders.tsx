import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { billingApi, data } from '../api/client';
import type { components } from '../api/billing';
import { Empty, ErrorBox, Loading, Notice, Page, Pager } from '../components';
import { formatDate, formatMoney } from '../lib/format';
import { useAction, useLoad } from '../lib/hooks';

type Order = components['schemas']['OrderRead'];

/** The success page the provider sends the buyer back to: confirm the order, wait until it is paid. */
export function CheckoutSuccessPage() {
  const { query } = useLocation();
  const orderId = query.order_id ?? '';
  const [order, setOrder] = useState<Order | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    let attempts = 0;
    const poll = async () => {
      try {
        const latest =
          attempts === 0
            ? await data(billingApi.POST('/orders/{order_id}/confirm', { params: { path: { order_id: orderId } } }))
            : await data(billingApi.GET('/orders/{order_id}', { params: { path: { order_id: orderId } } }));
        if (!live) return;
        setOrder(latest);
        attempts += 1;
        if (latest.status === 'pending' && attempts < 30) setTimeout(poll, 1000);
      } catch (e) {
        if (live) setError(e instanceof Error ? e.message : String(e));
      }
    };
    void poll();
    return () => {
      live = false;
    };
  }, [orderId]);
  return (
    <Page title="Thank you">
      <ErrorBox message={error} />
      {!order && !error && <Loading label="Confirming your payment…" />}
      {order && order.status === 'pending' && <Loading label="Waiting for the payment provider…" />}
      {order && order.status === 'paid' && (
        <>
          <p role="status" class="notice">
            Payment confirmed: <strong>{order.course_title}</strong> ({formatMoney(order.amount, order.currency)}) is yours.
          </p>
          <p>
            <a class="button" href={`/courses/${order.course_id}`}>
              Go to the course
            </a>{' '}
            <a href="/learning">My learning</a>
          </p>
        </>
      )}
      {order && !['pending', 'paid'].includes(order.status) && (
        <p role="status">Order status: {order.status}</p>
      )}
    </Page>
  );
}

export function CheckoutCancelPage() {
  const { query } = useLocation();
  return (
    <Page title="Payment not completed">
      <p>Nothing was charged for order {query.order_id}.</p>
      <p>
        <a href="/">Back to the courses</a>
      </p>
    </Page>
  );
}

export function OrdersPage() {
  const [page, setPage] = useState(1);
  const orders = useLoad(() => data(billingApi.GET('/orders', { params: { query: { page, page_size: 20 } } })), [page]);
  const refund = useAction();
  const selfRefund = (order: Order) =>
    refund.run(async () => {
      if (!window.confirm(`Refund ${order.course_title}? You lose access to the course.`)) return;
      try {
        await data(
          billingApi.POST('/orders/{order_id}/self-refund', {
            params: { path: { order_id: order.order_id } },
            body: { reason: 'requested by the learner' },
          }),
        );
      } finally {
        orders.reload();
      }
      return 'Refund requested.';
    });
  return (
    <Page title="Orders">
      <ErrorBox message={orders.error ?? refund.error} />
      <Notice message={refund.done} />
      {orders.loading && !orders.value && <Loading />}
      {orders.value && orders.value.items.length === 0 && <Empty>No orders yet.</Empty>}
      {orders.value && orders.value.items.length > 0 && (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Your orders</caption>
            <thead>
              <tr>
                <th scope="col">Course</th>
                <th scope="col">Date</th>
                <th scope="col">Amount</th>
                <th scope="col">Status</th>
                <th scope="col">Receipt</th>
              </tr>
            </thead>
            <tbody>
              {orders.value.items.map((o) => (
                <tr key={o.order_id}>
                  <td>
                    <a href={`/courses/${o.course_id}`}>{o.course_title}</a>
                  </td>
                  <td>{formatDate(o.paid_at ?? o.created_at)}</td>
                  <td>
                    {formatMoney(o.amount, o.currency)}
                    {o.discount_amount > 0 && <small class="muted"> (coupon {o.coupon_code})</small>}
                    {o.amount_refunded > 0 && <small class="muted"> refunded {formatMoney(o.amount_refunded, o.currency)}</small>}
                  </td>
                  <td>{o.status}</td>
                  <td>
                    <small class="muted">Order {o.order_id.slice(0, 8)}</small>{' '}
                    {o.status === 'paid' && (
                      <button type="button" class="small" disabled={refund.busy} onClick={() => selfRefund(o)}>
                        Refund
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {orders.value && <Pager page={page} pageSize={20} total={orders.value.total} onPage={setPage} />}
    </Page>
  );
}
