/** The API's one error format (RFC 9457 problem+json) as the app shows it: the `detail` the API sent. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  errors?: { loc: (string | number)[]; msg: string; type: string }[];
}

export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem;

  constructor(status: number, problem: Problem) {
    super(problemMessage(status, problem));
    this.name = 'ApiError';
    this.status = status;
    this.problem = problem;
  }

  get code(): string | undefined {
    return this.problem.code;
  }
}

/** The sentence to show: `detail`, plus the invalid fields of a 422, else the title or status. */
export function problemMessage(status: number, problem: Problem | undefined): string {
  if (!problem || typeof problem !== 'object') return `Request failed (${status})`;
  const fields = (problem.errors ?? [])
    .map((e) => `${e.loc.filter((part) => part !== 'body').join('.')}: ${e.msg}`)
    .join('; ');
  const base = problem.detail ?? problem.title ?? `Request failed (${status})`;
  if (status === 429) return `${base}. Too many attempts: wait a moment and try again.`;
  return fields ? `${base} (${fields})` : base;
}

/** Any thrown value as a message for the page. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
