import { useState } from 'preact/hooks';
import { useLocation, useRoute } from 'preact-iso';
import { billingApi, catalogApi, data, idempotencyKey } from '../api/client';
import type { components } from '../api/catalog';
import { Empty, ErrorBox, Loading, Page, Pager } from '../components';
import { formatDuration, formatMoney } from '../lib/format';
import { useAction, useLoad, useSession } from '../lib/hooks';

type CourseRead = components['schemas']['CourseRead'];
const PAGE_SIZE = 12;

export function priceLabel(course: { is_free: boolean; price_amount: number; currency: string }): string {
  return course.is_free ? 'Free' : formatMoney(course.price_amount, course.currency);
}

export function CatalogPage() {
  const { query, route } = useLocation();
  const q = query.q ?? '';
  const category = query.category ?? '';
  const page = Number(query.page ?? '1') || 1;
  const [search, setSearch] = useState(q);
  const categories = useLoad(() => data(catalogApi.GET('/categories')), []);
  const courses = useLoad(
    () =>
      data(
        catalogApi.GET('/courses', {
          params: { query: { q: q || undefined, category: category || undefined, page, page_size: PAGE_SIZE } },
        }),
      ),
    [q, category, page],
  );
  const go = (next: { q?: string; category?: string; page?: number }) => {
    const params = new URLSearchParams();
    const merged = { q, category, page: 1, ...next };
    if (merged.q) params.set('q', merged.q);
    if (merged.category) params.set('category', merged.category);
    if (merged.page > 1) params.set('page', String(merged.page));
    const text = params.toString();
    route(text ? `/?${text}` : '/');
  };
  return (
    <Page title="Courses">
      <form
        class="search"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          go({ q: search.trim() });
        }}
      >
        <label for="search">Search courses</label>
        <input id="search" type="search" value={search} onInput={(e) => setSearch((e.target as HTMLInputElement).value)} />
        <label for="category">Category</label>
        <select id="category" value={category} onChange={(e) => go({ category: (e.target as HTMLSelectElement).value })}>
          <option value="">All categories</option>
          {(categories.value ?? []).map((c) => (
            <option key={c.id} value={c.slug}>
              {c.name}
            </option>
          ))}
        </select>
        <button type="submit">Search</button>
      </form>
      <ErrorBox message={courses.error ?? categories.error} />
      {courses.loading && <Loading />}
      {courses.value && courses.value.items.length === 0 && <Empty>No course matches.</Empty>}
      {courses.value && (
        <>
          <ul class="cards" aria-label="Courses">
            {courses.value.items.map((c) => (
              <li key={c.id} class="card">
                <h2>
                  <a href={`/courses/${c.id}`}>{c.title}</a>
                </h2>
                <p>{c.subtitle}</p>
                <p class="meta">
                  <span class="price">{priceLabel(c)}</span> · {c.lesson_count} lessons · {c.level}
                  {c.category ? ` · ${c.category}` : ''}
                </p>
              </li>
            ))}
          </ul>
          <Pager page={page} pageSize={PAGE_SIZE} total={courses.value.total} onPage={(p) => go({ page: p })} />
        </>
      )}
    </Page>
  );
}

export function CoursePage() {
  const { params } = useRoute();
  const s = useSession();
  const { route } = useLocation();
  const course = useLoad(() => data(catalogApi.GET('/courses/{course_id}', { params: { path: { course_id: params.id } } })), [params.id, s.user?.id]);
  const enrollments = useLoad(
    async () => (s.user ? (await data(catalogApi.GET('/me/enrollments'))).items : []),
    [s.user?.id],
  );
  const buy = useAction();
  const enrolled = (enrollments.value ?? []).some((e) => e.course_id === params.id);
  const [coupon, setCoupon] = useState('');

  const checkout = (c: CourseRead) =>
    buy.run(async () => {
      await s.whenReady; // a click right after a reload waits for the cookie sign-in
      if (!s.user) {
        route(`/login?next=${encodeURIComponent(`/courses/${c.id}`)}`);
        return;
      }
      if (c.is_free) {
        await data(
          catalogApi.POST('/courses/{course_id}/enroll', {
            params: { path: { course_id: c.id }, header: { 'idempotency-key': idempotencyKey() } },
          }),
        );
        enrollments.reload();
        return 'You are enrolled.';
      }
      const order = await data(
        billingApi.POST('/checkout', {
          params: { header: { 'Idempotency-Key': idempotencyKey() } },
          body: { course_id: c.id, coupon_code: coupon.trim() || null },
        }),
      );
      if (order.checkout_url) window.location.assign(order.checkout_url);
      else route(`/checkout/success?order_id=${order.order_id}`);
    });

  if (course.loading && !course.value) return <Loading />;
  if (course.error || !course.value) return <Page title="Course"><ErrorBox message={course.error} /></Page>;
  const c = course.value;
  const firstLesson = c.sections.flatMap((sec) => sec.lessons).find((l) => l.kind === 'video');
  return (
    <Page title={c.title}>
      <p class="lead">{c.subtitle}</p>
      <p class="meta">
        {c.level} · {c.language} · {c.lesson_count} lessons · {formatDuration(c.duration_seconds)}
      </p>
      <div class="buy">
        <p class="price" aria-label="Price">
          {priceLabel(c)}
        </p>
        {enrolled ? (
          firstLesson && (
            <a class="button" href={`/learn/${c.id}/${firstLesson.id}`}>
              Start watching
            </a>
          )
        ) : (
          <>
            {!c.is_free && s.user && (
              <div class="field inline">
                <label for="coupon">Coupon code</label>
                <input id="coupon" value={coupon} onInput={(e) => setCoupon((e.target as HTMLInputElement).value)} />
              </div>
            )}
            <button type="button" disabled={buy.busy} onClick={() => checkout(c)}>
              {c.is_free ? 'Enroll for free' : 'Buy this course'}
            </button>
          </>
        )}
        <ErrorBox message={buy.error} />
        {buy.done && <p role="status">{buy.done}</p>}
      </div>
      <p class="description">{c.description}</p>
      <h2>Curriculum</h2>
      {c.sections.length === 0 && <Empty>No lessons yet.</Empty>}
      {c.sections.map((section) => (
        <section key={section.id} class="curriculum">
          <h3>{section.title}</h3>
          <ol>
            {section.lessons.map((lesson) => (
              <li key={lesson.id}>
                <span>{lesson.title}</span>{' '}
                <span class="muted">
                  {lesson.kind === 'video' ? formatDuration(lesson.duration_seconds) : 'text'}
                </span>{' '}
                {lesson.kind === 'video' && (lesson.is_preview || enrolled) && (
                  <a href={`/learn/${c.id}/${lesson.id}`} aria-label={`Watch ${lesson.title}`}>
                    {lesson.is_preview && !enrolled ? 'Free preview' : 'Watch'}
                  </a>
                )}
              </li>
            ))}
          </ol>
        </section>
      ))}
    </Page>
  );
}
