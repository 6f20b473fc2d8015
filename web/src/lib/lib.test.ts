import { describe, expect, it } from 'vitest';
import { formatDuration, formatMoney, parseAmount } from './format';
import { jwtClaims, refreshDelayMs } from './jwt';
import { ApiError, problemMessage } from './problem';
import { resumeLesson } from './progress';
import { moved, sameOriginUrl } from './urls';
import { nextSpot, watermarkText } from './watermark';
import { codeFrom, safeNext } from '../pages/auth';

describe('problem+json', () => {
  it('shows the detail the API sent', () => {
    expect(problemMessage(403, { title: 'Forbidden', detail: 'you are not enrolled in this course', code: 'not_enrolled' })).toBe(
      'you are not enrolled in this course',
    );
  });
  it('names the invalid fields of a 422 without the body prefix', () => {
    const message = problemMessage(422, {
      detail: 'the request does not match the schema',
      errors: [{ loc: ['body', 'password'], msg: 'String should have at least 8 characters', type: 'string_too_short' }],
    });
    expect(message).toBe('the request does not match the schema (password: String should have at least 8 characters)');
  });
  it('falls back to the title, then the status', () => {
    expect(problemMessage(404, { title: 'Not Found' })).toBe('Not Found');
    expect(problemMessage(502, undefined)).toBe('Request failed (502)');
  });
  it('keeps status and code on the error', () => {
    const error = new ApiError(409, { detail: 'too many streams', code: 'too_many_streams' });
    expect([error.status, error.code, error.message]).toEqual([409, 'too_many_streams', 'too many streams']);
  });
});

describe('formatting', () => {
  it('formats minor units in the currency', () => {
    expect(formatMoney(4900, 'EUR')).toBe('€49.00');
    expect(formatMoney(500, 'JPY')).toMatch(/^(JP)?¥500$/); // no minor unit
  });
  it('parses typed amounts into minor units', () => {
    expect(parseAmount('19.50')).toBe(1950);
    expect(parseAmount('19,5')).toBe(1950);
    expect(parseAmount('7')).toBe(700);
    expect(parseAmount('-1')).toBeNull();
    expect(parseAmount('1.234')).toBeNull();
    expect(parseAmount('abc')).toBeNull();
  });
  it('formats durations', () => {
    expect(formatDuration(6)).toBe('0:06');
    expect(formatDuration(3723)).toBe('1:02:03');
    expect(formatDuration(null)).toBe('');
  });
});

describe('tokens', () => {
  const token = (claims: object) => `h.${btoa(JSON.stringify(claims)).replace(/=+$/, '')}.s`;
  it('reads claims without verifying', () => {
    expect(jwtClaims(token({ sub: 'u1', exp: 123 }))).toEqual({ sub: 'u1', exp: 123 });
    expect(jwtClaims('not-a-jwt')).toBeNull();
    expect(jwtClaims('a.!!!.c')).toBeNull();
  });
  it('refreshes a minute before a long expiry and at 80 % of a short one, never in under 5 s', () => {
    expect(refreshDelayMs(900)).toBe(840_000);
    expect(refreshDelayMs(100)).toBe(80_000);
    expect(refreshDelayMs(2)).toBe(5_000);
  });
});

describe('watermark', () => {
  it('never stays in the same place twice in a row', () => {
    let spot = nextSpot(null, () => 0);
    for (let i = 0; i < 50; i++) {
      const next = nextSpot(spot, Math.random);
      expect(next).not.toEqual(spot);
      spot = next;
    }
  });
  it('covers more than one row and column over time', () => {
    const spots = Array.from({ length: 12 }, (_, i) => nextSpot(null, () => i / 12));
    expect(new Set(spots.map((s) => s.left)).size).toBeGreaterThan(1);
    expect(new Set(spots.map((s) => s.top)).size).toBeGreaterThan(1);
  });
  it('shows the viewer and the code', () => {
    expect(watermarkText('ABC123', 'a@b.c')).toBe('a@b.c · ABC123');
    expect(watermarkText('ABC123')).toBe('ABC123');
  });
});

describe('navigation', () => {
  it('resumes the started lesson, else the first unfinished video', () => {
    const lessons = [
      { id: 'a', kind: 'video' },
      { id: 't', kind: 'text' },
      { id: 'b', kind: 'video' },
      { id: 'c', kind: 'video' },
    ];
    expect(resumeLesson(lessons, [])).toBe('a');
    expect(resumeLesson(lessons, [{ lesson_id: 'a', position_seconds: 10, completed: true }])).toBe('b');
    expect(
      resumeLesson(lessons, [
        { lesson_id: 'a', position_seconds: 10, completed: true },
        { lesson_id: 'c', position_seconds: 3, completed: false },
      ]),
    ).toBe('c');
    expect(resumeLesson([{ id: 't', kind: 'text' }], [])).toBeNull();
  });
  it('moves items within bounds only', () => {
    expect(moved([1, 2, 3], 0, 1)).toEqual([2, 1, 3]);
    expect(moved([1, 2, 3], 0, -1)).toEqual([1, 2, 3]);
    expect(moved([1, 2, 3], 2, 1)).toEqual([1, 2, 3]);
  });
  it('calls the platform on its own origin, other hosts as they are', () => {
    const here = 'http://127.0.0.1:8000/learn/x';
    expect(sameOriginUrl('https://academy.example/api/playback/manifests/s/master.m3u8?token=t', here)).toBe(
      '/api/playback/manifests/s/master.m3u8?token=t',
    );
    expect(sameOriginUrl('https://bucket.s3.amazonaws.com/uploads/a?X-Amz-Signature=1', here)).toBe(
      'https://bucket.s3.amazonaws.com/uploads/a?X-Amz-Signature=1',
    );
  });
  it('goes back only to a path of this app after sign-in', () => {
    expect(safeNext('/orders')).toBe('/orders');
    expect(safeNext('//evil.example')).toBe('/learning');
    expect(safeNext('https://evil.example')).toBe('/learning');
    expect(safeNext(undefined)).toBe('/learning');
  });
  it('reads the mailed code from the fragment, then the query', () => {
    expect(codeFrom('#code=abc', '')).toBe('abc');
    expect(codeFrom('', '?code=def')).toBe('def');
    expect(codeFrom('', '')).toBe('');
  });
});
