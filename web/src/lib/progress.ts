/** Which lesson "Resume" opens: the first started but unfinished one, else the first unfinished one. */
export interface LessonRef {
  id: string;
  kind: string;
}
export interface LessonProgressRef {
  lesson_id: string;
  position_seconds: number;
  completed: boolean;
}

export function resumeLesson(lessons: LessonRef[], progress: LessonProgressRef[]): string | null {
  const videos = lessons.filter((l) => l.kind === 'video');
  const byId = new Map(progress.map((p) => [p.lesson_id, p]));
  const started = videos.find((l) => {
    const p = byId.get(l.id);
    return p && !p.completed && p.position_seconds > 0;
  });
  if (started) return started.id;
  const fresh = videos.find((l) => !byId.get(l.id)?.completed);
  return (fresh ?? videos[0])?.id ?? null;
}
