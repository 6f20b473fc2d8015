import { useEffect, useState } from 'preact/hooks';
import { useLocation, useRoute } from 'preact-iso';
import { catalogApi, data, playbackApi } from '../api/client';
import type { components } from '../api/catalog';
import type { components as PlaybackComponents } from '../api/playback';
import { session } from '../api/session';
import { Empty, ErrorBox, Field, Loading, Notice, Page, Progress } from '../components';
import { formatDate, formatMoney, parseAmount } from '../lib/format';
import { useAction, useLoad } from '../lib/hooks';
import { moved, sameOriginUrl } from '../lib/urls';

type Course = components['schemas']['CourseRead'];
type Asset = PlaybackComponents['schemas']['AssetRead'];

export function StudioPage() {
  const { route } = useLocation();
  const courses = useLoad(() => data(catalogApi.GET('/me/courses', { params: { query: { page_size: 100 } } })), []);
  const [title, setTitle] = useState('');
  const [price, setPrice] = useState('0');
  const create = useAction();
  return (
    <Page title="Instructor studio">
      <form
        class="form"
        aria-label="New course"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run(async () => {
            const amount = parseAmount(price);
            if (amount === null) throw new Error('The price is an amount such as 49 or 49.00');
            const course = await data(catalogApi.POST('/courses', { body: { title: title.trim(), price_amount: amount, currency: 'EUR' } }));
            route(`/studio/courses/${course.id}`);
          });
        }}
      >
        <h2>New course</h2>
        <Field label="Title" name="title" value={title} onInput={setTitle} required />
        <Field label="Price (EUR, 0 for free)" name="price" value={price} onInput={setPrice} required />
        <ErrorBox message={create.error} />
        <button type="submit" disabled={create.busy}>
          Create course
        </button>
      </form>
      <h2>Your courses</h2>
      <ErrorBox message={courses.error} />
      {courses.loading && !courses.value && <Loading />}
      {courses.value && courses.value.items.length === 0 && <Empty>No course yet.</Empty>}
      <ul class="plain">
        {(courses.value?.items ?? []).map((c) => (
          <li key={c.id}>
            <a href={`/studio/courses/${c.id}`}>{c.title}</a> <span class="muted">{formatMoney(c.price_amount, c.currency)}</span>
          </li>
        ))}
      </ul>
    </Page>
  );
}

/** PUT the file with upload progress (fetch cannot report it), then tell playback it is complete. */
function uploadFile(url: string, headers: Record<string, string>, file: File, onProgress: (percent: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', sameOriginUrl(url));
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress((e.loaded / e.total) * 100);
    xhr.onload = () => (xhr.status < 300 ? resolve() : reject(new Error(`Upload refused (${xhr.status}): ${xhr.responseText}`)));
    xhr.onerror = () => reject(new Error('Upload failed: network error'));
    xhr.send(file);
  });
}

function VideoUpload({ onReady }: { onReady: (asset: Asset) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [uploaded, setUploaded] = useState(0);
  const [asset, setAsset] = useState<Asset | null>(null);
  const action = useAction();
  useEffect(() => {
    if (!asset || asset.status === 'ready' || asset.status === 'failed') {
      if (asset?.status === 'ready') onReady(asset);
      return;
    }
    const timer = setTimeout(async () => {
      try {
        setAsset(await data(playbackApi.GET('/assets/{asset_id}', { params: { path: { asset_id: asset.asset_id } } })));
      } catch (e) {
        action.setError(e instanceof Error ? e.message : String(e));
      }
    }, 1000);
    return () => clearTimeout(timer);
  }, [asset]);
  return (
    <form
      class="form upload"
      aria-label="Upload a video"
      onSubmit={(e) => {
        e.preventDefault();
        void action.run(async () => {
          if (!file) throw new Error('Choose a video file first');
          const created = await data(
            playbackApi.POST('/assets', { body: { filename: file.name, content_type: file.type || 'video/mp4', size_bytes: file.size, title: file.name } }),
          );
          if (!created.upload.url) throw new Error('This storage needs a multipart upload, which the studio does not do yet');
          setUploaded(0);
          await uploadFile(created.upload.url, created.upload.headers as Record<string, string>, file, setUploaded);
          setUploaded(100);
          await data(playbackApi.POST('/assets/{asset_id}/complete', { params: { path: { asset_id: created.asset_id } }, body: {} }));
          setAsset(await data(playbackApi.GET('/assets/{asset_id}', { params: { path: { asset_id: created.asset_id } } })));
        });
      }}
    >
      <label for="video-file">Video file</label>
      <input id="video-file" type="file" accept="video/*" onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0] ?? null)} />
      <button type="submit" disabled={action.busy}>
        Upload
      </button>
      {(action.busy || uploaded > 0) && <Progress value={uploaded} label="Upload" />}
      {asset && (
        <p role="status">
          Transcoding: {asset.status} {asset.status !== 'ready' && <Progress value={asset.progress} label="Transcoding" />}
          {asset.failure_reason}
        </p>
      )}
      <ErrorBox message={action.error} />
    </form>
  );
}

function CourseDetails({ course, onSaved }: { course: Course; onSaved: (c: Course) => void }) {
  const [title, setTitle] = useState(course.title);
  const [subtitle, setSubtitle] = useState(course.subtitle);
  const [description, setDescription] = useState(course.description);
  const [price, setPrice] = useState(String(course.price_amount / 100));
  const save = useAction();
  return (
    <form
      class="form"
      aria-label="Course details"
      onSubmit={(e) => {
        e.preventDefault();
        void save.run(async () => {
          const amount = parseAmount(price, course.currency);
          if (amount === null) throw new Error('The price is an amount such as 49 or 49.00');
          onSaved(
            await data(
              catalogApi.PATCH('/courses/{course_id}', {
                params: { path: { course_id: course.id } },
                body: { title, subtitle, description, price_amount: amount },
              }),
            ),
          );
          return 'Saved.';
        });
      }}
    >
      <Field label="Title" name="title" value={title} onInput={setTitle} required />
      <Field label="Subtitle" name="subtitle" value={subtitle} onInput={setSubtitle} />
      <div class="field">
        <label for="field-description">Description</label>
        <textarea id="field-description" rows={4} value={description} onInput={(e) => setDescription((e.target as HTMLTextAreaElement).value)} />
      </div>
      <Field label={`Price (${course.currency})`} name="price" value={price} onInput={setPrice} required />
      <ErrorBox message={save.error} />
      <Notice message={save.done} />
      <button type="submit" disabled={save.busy}>
        Save details
      </button>
    </form>
  );
}

export function StudioCoursePage() {
  const { params } = useRoute();
  const loaded = useLoad(() => data(catalogApi.GET('/courses/{course_id}', { params: { path: { course_id: params.id } } })), [params.id]);
  const [course, setCourse] = useState<Course | null>(null);
  const enrollments = useLoad(
    () => data(catalogApi.GET('/courses/{course_id}/enrollments', { params: { path: { course_id: params.id }, query: { page_size: 50 } } })),
    [params.id],
  );
  const [sectionTitle, setSectionTitle] = useState('');
  const [lessonTitle, setLessonTitle] = useState('');
  const [lessonSection, setLessonSection] = useState('');
  const [preview, setPreview] = useState(false);
  const [readyAsset, setReadyAsset] = useState<Asset | null>(null);
  const action = useAction();
  useEffect(() => setCourse(loaded.value ?? null), [loaded.value]);

  if (!course) return loaded.error ? <ErrorBox message={loaded.error} /> : <Loading />;
  const id = course.id;
  const reorder = (order: { id: string; lesson_ids: string[] }[]) =>
    action.run(async () => {
      setCourse(await data(catalogApi.PUT('/courses/{course_id}/curriculum/order', { params: { path: { course_id: id } }, body: { sections: order } })));
    });
  const order = course.sections.map((s) => ({ id: s.id, lesson_ids: s.lessons.map((l) => l.id) }));
  const isAdmin = session.hasRole('admin');
  return (
    <Page title={`Studio: ${course.title}`}>
      <p>
        Status: <strong data-testid="course-status">{course.status}</strong> ·{' '}
        <a href={`/courses/${id}`}>View the course page</a>
      </p>
      {course.status === 'draft' && (
        <button
          type="button"
          disabled={action.busy}
          onClick={() =>
            action.run(async () => {
              setCourse(await data(catalogApi.POST('/courses/{course_id}/status', { params: { path: { course_id: id } }, body: { status: 'in_review' } })));
              return 'Submitted for review.';
            })
          }
        >
          Submit for review
        </button>
      )}
      {isAdmin && course.status !== 'published' && (
        <button
          type="button"
          disabled={action.busy}
          onClick={() =>
            action.run(async () => {
              setCourse(await data(catalogApi.POST('/courses/{course_id}/publish', { params: { path: { course_id: id } } })));
            })
          }
        >
          Publish
        </button>
      )}
      <ErrorBox message={action.error} />
      <Notice message={action.done} />

      <h2>Details</h2>
      <CourseDetails key={course.updated_at} course={course} onSaved={setCourse} />

      <h2>Curriculum</h2>
      {course.sections.length === 0 && <Empty>No section yet.</Empty>}
      {course.sections.map((section, si) => (
        <section key={section.id} class="curriculum">
          <h3>
            {section.title}{' '}
            <button type="button" class="small" aria-label={`Move section ${section.title} up`} disabled={si === 0} onClick={() => reorder(moved(order, si, -1))}>
              ↑
            </button>
            <button type="button" class="small" aria-label={`Move section ${section.title} down`} disabled={si === order.length - 1} onClick={() => reorder(moved(order, si, 1))}>
              ↓
            </button>
          </h3>
          <ol>
            {section.lessons.map((lesson, li) => (
              <li key={lesson.id}>
                {lesson.title} <span class="muted">{lesson.kind}{lesson.is_preview ? ', preview' : ''}{lesson.asset_id ? ', video attached' : ''}</span>{' '}
                <button
                  type="button"
                  class="small"
                  aria-label={`Move lesson ${lesson.title} up`}
                  disabled={li === 0}
                  onClick={() => reorder(order.map((o, i) => (i === si ? { ...o, lesson_ids: moved(o.lesson_ids, li, -1) } : o)))}
                >
                  ↑
                </button>
                <button
                  type="button"
                  class="small"
                  aria-label={`Move lesson ${lesson.title} down`}
                  disabled={li === section.lessons.length - 1}
                  onClick={() => reorder(order.map((o, i) => (i === si ? { ...o, lesson_ids: moved(o.lesson_ids, li, 1) } : o)))}
                >
                  ↓
                </button>
                <button
                  type="button"
                  class="small danger"
                  aria-label={`Delete lesson ${lesson.title}`}
                  onClick={() =>
                    action.run(async () => {
                      setCourse(await data(catalogApi.DELETE('/courses/{course_id}/lessons/{lesson_id}', { params: { path: { course_id: id, lesson_id: lesson.id } } })));
                    })
                  }
                >
                  Delete
                </button>
              </li>
            ))}
          </ol>
        </section>
      ))}
      <form
        class="form inline-form"
        aria-label="New section"
        onSubmit={(e) => {
          e.preventDefault();
          void action.run(async () => {
            setCourse(await data(catalogApi.POST('/courses/{course_id}/sections', { params: { path: { course_id: id } }, body: { title: sectionTitle.trim() } })));
            setSectionTitle('');
          });
        }}
      >
        <Field label="New section title" name="section_title" value={sectionTitle} onInput={setSectionTitle} required />
        <button type="submit">Add section</button>
      </form>

      <h3>New video lesson</h3>
      <VideoUpload onReady={setReadyAsset} />
      <form
        class="form"
        aria-label="New lesson"
        onSubmit={(e) => {
          e.preventDefault();
          void action.run(async () => {
            const section = lessonSection || course.sections[0]?.id;
            if (!section) throw new Error('Add a section first');
            setCourse(
              await data(
                catalogApi.POST('/courses/{course_id}/sections/{section_id}/lessons', {
                  params: { path: { course_id: id, section_id: section } },
                  body: {
                    title: lessonTitle.trim(),
                    kind: readyAsset ? 'video' : 'text',
                    asset_id: readyAsset?.asset_id ?? null,
                    duration_seconds: readyAsset?.duration_seconds ? Math.round(readyAsset.duration_seconds) : null,
                    is_preview: preview,
                    body: readyAsset ? null : '',
                  },
                }),
              ),
            );
            setLessonTitle('');
            setReadyAsset(null);
          });
        }}
      >
        <Field label="Lesson title" name="lesson_title" value={lessonTitle} onInput={setLessonTitle} required />
        <div class="field">
          <label for="lesson-section">Section</label>
          <select id="lesson-section" value={lessonSection || course.sections[0]?.id} onChange={(e) => setLessonSection((e.target as HTMLSelectElement).value)}>
            {course.sections.map((s) => (
              <option key={s.id} value={s.id}>
                {s.title}
              </option>
            ))}
          </select>
        </div>
        <label class="check">
          <input type="checkbox" checked={preview} onChange={(e) => setPreview((e.target as HTMLInputElement).checked)} /> Free preview
        </label>
        <p class="muted">{readyAsset ? `Video ready: ${readyAsset.filename}` : 'Without an uploaded video this is a text lesson.'}</p>
        <button type="submit">Add lesson</button>
      </form>

      <h2>Enrollments</h2>
      <ErrorBox message={enrollments.error} />
      {enrollments.value && enrollments.value.items.length === 0 && <Empty>Nobody is enrolled yet.</Empty>}
      <ul class="plain">
        {(enrollments.value?.items ?? []).map((e) => (
          <li key={e.user_id}>
            {e.user_id} · {e.source} · {e.status} · {formatDate(e.created_at)}
          </li>
        ))}
      </ul>
    </Page>
  );
}
