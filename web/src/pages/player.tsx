import type Hls from 'hls.js';
import { useEffect, useRef, useState } from 'preact/hooks';
import { useRoute } from 'preact-iso';
import { catalogApi, data, playbackApi } from '../api/client';
import type { components } from '../api/playback';
import { session } from '../api/session';
import { ErrorBox, Loading, Page } from '../components';
import { formatDuration } from '../lib/format';
import { useLoad, useSession } from '../lib/hooks';
import { ApiError, errorMessage } from '../lib/problem';
import { sameOriginUrl } from '../lib/urls';
import { nextSpot, watermarkText, WATERMARK_INTERVAL_MS, type Spot } from '../lib/watermark';

type Grant = components['schemas']['TokenResponse'];

/** Why the player stopped, in the learner's words, from the API's problem. */
export function endedMessage(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 409) return `${error.message}. Stop watching on another device and try again.`;
    if (error.status === 410 || error.status === 404)
      return `${error.message}. This stream was ended, for example because you started watching on another device.`;
  }
  return errorMessage(error);
}

/** Frees the stream slot even while the page unloads (keepalive request). */
function stopStream(sessionId: string, position: number): void {
  const token = session.accessToken;
  if (!token) return;
  void fetch(`/api/playback/sessions/${sessionId}/stop`, {
    method: 'POST',
    keepalive: true,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ position_seconds: position }),
  }).catch(() => undefined);
}

function Watermark({ text }: { text: string }) {
  const [spot, setSpot] = useState<Spot>(() => nextSpot(null));
  useEffect(() => {
    const timer = setInterval(() => setSpot((previous) => nextSpot(previous)), WATERMARK_INTERVAL_MS);
    return () => clearInterval(timer);
  }, []);
  return (
    <div class="watermark" data-testid="watermark" aria-hidden="true" style={{ left: `${spot.left}%`, top: `${spot.top}%` }}>
      {text}
    </div>
  );
}

export function PlayerPage() {
  const { params } = useRoute();
  const { courseId, lessonId } = params;
  const s = useSession();
  const video = useRef<HTMLVideoElement>(null);
  const [grant, setGrant] = useState<Grant | null>(null);
  const [ended, setEnded] = useState<string | null>(null);
  const course = useLoad(() => data(catalogApi.GET('/courses/{course_id}', { params: { path: { course_id: courseId } } })), [courseId]);

  useEffect(() => {
    let live = true;
    let hls: Hls | null = null;
    let heartbeat: ReturnType<typeof setInterval> | undefined;
    let current: Grant | null = null;
    setGrant(null);
    setEnded(null);
    const stop = (message: string) => {
      clearInterval(heartbeat);
      hls?.destroy();
      hls = null;
      video.current?.pause();
      video.current?.removeAttribute('src');
      if (live) setEnded(message);
    };
    const onLeave = () => current && stopStream(current.session_id, video.current?.currentTime ?? 0);
    (async () => {
      const issued = await data(playbackApi.POST('/token', { body: { lesson_id: lessonId } }));
      if (!live) {
        stopStream(issued.session_id, 0);
        return;
      }
      current = issued;
      setGrant(issued);
      const element = video.current;
      if (!element) return;
      const resume = issued.resume_position_seconds ?? 0;
      element.addEventListener('loadedmetadata', () => {
        if (resume > 0 && resume < element.duration - 1) element.currentTime = resume;
      }, { once: true });
      // hls.js is most of the app's weight: loaded only when a video plays.
      const { default: HlsPlayer } = await import('hls.js');
      if (!live) return;
      if (HlsPlayer.isSupported()) {
        hls = new HlsPlayer({ enableWorker: true });
        hls.on(HlsPlayer.Events.ERROR, (_event, info) => {
          if (info.fatal) stop(`Playback stopped: ${info.details}`);
        });
        hls.on(HlsPlayer.Events.MANIFEST_PARSED, () => void element.play().catch(() => undefined));
        hls.loadSource(sameOriginUrl(issued.manifest_url));
        hls.attachMedia(element);
      } else {
        element.src = sameOriginUrl(issued.manifest_url);
        void element.play().catch(() => undefined);
      }
      heartbeat = setInterval(async () => {
        try {
          await data(
            playbackApi.POST('/sessions/{session_id}/heartbeat', {
              params: { path: { session_id: issued.session_id } },
              body: { position_seconds: element.currentTime || 0 },
            }),
          );
        } catch (error) {
          if (error instanceof ApiError && error.status >= 400 && error.status < 500) stop(endedMessage(error));
        }
      }, Math.max(1, issued.heartbeat_interval_seconds) * 1000);
    })().catch((error: unknown) => live && stop(endedMessage(error)));
    window.addEventListener('pagehide', onLeave);
    return () => {
      live = false;
      window.removeEventListener('pagehide', onLeave);
      onLeave();
      clearInterval(heartbeat);
      hls?.destroy();
    };
  }, [lessonId]);

  const lessons = course.value?.sections.flatMap((section) => section.lessons) ?? [];
  const lesson = lessons.find((l) => l.id === lessonId);
  return (
    <Page title={lesson?.title ?? 'Player'}>
      <p>
        <a href={`/courses/${courseId}`}>{course.value?.title ?? 'Back to the course'}</a>
      </p>
      <ErrorBox message={ended} />
      {!grant && !ended && <Loading label="Starting the video…" />}
      <div class="player" hidden={!!ended}>
        <video ref={video} controls playsInline preload="auto" aria-label={lesson?.title ?? 'Lesson video'} data-testid="video" />
        {grant && <Watermark text={watermarkText(grant.watermark, s.user?.email)} />}
      </div>
      {lessons.length > 1 && (
        <nav aria-label="Lessons">
          <ol class="lesson-list">
            {lessons.map((l) => (
              <li key={l.id}>
                {l.id === lessonId ? (
                  <strong aria-current="page">{l.title}</strong>
                ) : l.kind === 'video' ? (
                  <a href={`/learn/${courseId}/${l.id}`}>{l.title}</a>
                ) : (
                  <span>{l.title}</span>
                )}{' '}
                <span class="muted">{formatDuration(l.duration_seconds)}</span>
              </li>
            ))}
          </ol>
        </nav>
      )}
    </Page>
  );
}
