import { catalogApi, data, playbackApi } from '../api/client';
import { Empty, ErrorBox, Loading, Page, Progress } from '../components';
import { formatDate } from '../lib/format';
import { useLoad } from '../lib/hooks';
import { resumeLesson } from '../lib/progress';

async function learning() {
  const { items } = await data(catalogApi.GET('/me/enrollments'));
  return Promise.all(
    items.map(async (enrollment) => {
      const [course, progress] = await Promise.all([
        data(catalogApi.GET('/courses/{course_id}', { params: { path: { course_id: enrollment.course_id } } })),
        data(playbackApi.GET('/progress', { params: { query: { course_id: enrollment.course_id } } })).catch(() => null),
      ]);
      const lessons = course.sections.flatMap((s) => s.lessons);
      return { enrollment, progress, resume: resumeLesson(lessons, progress?.lessons ?? []) };
    }),
  );
}

export function MyLearningPage() {
  const courses = useLoad(learning, []);
  return (
    <Page title="My learning">
      <ErrorBox message={courses.error} />
      {courses.loading && !courses.value && <Loading />}
      {courses.value && courses.value.length === 0 && (
        <Empty>
          You are not enrolled in any course yet. <a href="/">Browse the courses</a>.
        </Empty>
      )}
      <ul class="cards" aria-label="Your courses">
        {(courses.value ?? []).map(({ enrollment, progress, resume }) => (
          <li key={enrollment.course_id} class="card">
            <h2>
              <a href={`/courses/${enrollment.course_id}`}>{enrollment.title}</a>
            </h2>
            <p class="meta">Enrolled {formatDate(enrollment.enrolled_at)}</p>
            <Progress value={progress?.completion_percent ?? 0} label={`Progress in ${enrollment.title}`} />
            {resume && (
              <a class="button" href={`/learn/${enrollment.course_id}/${resume}`}>
                {progress && progress.watched_seconds > 0 ? 'Resume' : 'Start'}
              </a>
            )}
          </li>
        ))}
      </ul>
    </Page>
  );
}
