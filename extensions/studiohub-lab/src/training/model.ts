import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { API_NAMESPACE, requestAPI } from '../api';
import { DryRunFormModel } from '../components/dryRun';
import { errorText } from '../components/errors';
import {
  checkSpec,
  Request,
  RequestBytes,
  requestBytes
} from '../components/requests';
import {
  IJob,
  IJobEvent,
  IJobMetrics,
  IJobSpec,
  IKernelOptions,
  ITrainingModel,
  JobStatus
} from '../tokens';

/**
 * The training routes of the server extension (`studiohub/api/v1/training/…`), which
 * forward to the hub's jobs service with this server's token.
 */
const ROOT = 'training/jobs';

/** Statuses after which nothing changes any more. */
export const FINAL_STATUSES: ReadonlyArray<JobStatus> = [
  'succeeded',
  'failed',
  'cancelled'
];

export function isFinal(status: JobStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

/**
 * The user's training jobs, refreshed by a poll while JupyterLab is visible (faster
 * while one of them is not over yet).
 */
export class TrainingModel implements ITrainingModel {
  constructor(options: TrainingModel.IOptions = {}) {
    this._request = options.request ?? requestAPI;
    this._requestBytes = options.requestBytes ?? requestBytes;
    this._baseUrl = options.baseUrl ?? ServerConnection.makeSettings().baseUrl;
    this._interval = (options.refreshInterval ?? 5) * 1000;
    this._poll = new Poll({
      factory: () => this.refresh(),
      frequency: { interval: this._interval, backoff: true, max: 60 * 1000 },
      standby: 'when-hidden',
      name: 'studiohub:training-jobs'
    });
  }

  get jobs(): ReadonlyArray<IJob> {
    return this._jobs;
  }
  get error(): string | null {
    return this._error;
  }
  get changed(): ISignal<ITrainingModel, void> {
    return this._changed;
  }
  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  async refresh(): Promise<void> {
    try {
      const answer = await this._request<{ jobs: IJob[] }>(ROOT);
      this._jobs = answer.jobs;
      this._error = null;
    } catch (error) {
      this._error = errorText(error);
      this._changed.emit();
      throw error;
    }
    this._changed.emit();
  }

  find(id: string): IJob | undefined {
    return this._jobs.find(job => job.id === id);
  }

  check(spec: IJobSpec): Promise<string | null> {
    return checkSpec(this._request, ROOT, spec);
  }

  async submit(spec: IJobSpec): Promise<IJob> {
    const job = await this._request<IJob>(ROOT, {
      method: 'POST',
      body: JSON.stringify(spec)
    });
    this._update(job);
    return job;
  }

  async get(id: string): Promise<IJob> {
    const job = await this._request<IJob>(`${ROOT}/${encodeURIComponent(id)}`);
    this._update(job);
    return job;
  }

  async events(id: string): Promise<IJobEvent[]> {
    const answer = await this._request<{ events: IJobEvent[] }>(
      `${ROOT}/${encodeURIComponent(id)}/events`
    );
    return answer.events;
  }

  metrics(id: string): Promise<IJobMetrics> {
    return this._request<IJobMetrics>(
      `${ROOT}/${encodeURIComponent(id)}/metrics`
    );
  }

  async cancel(id: string): Promise<IJob> {
    const job = await this._request<IJob>(
      `${ROOT}/${encodeURIComponent(id)}/cancel`,
      { method: 'POST' }
    );
    this._update(job);
    return job;
  }

  async rerun(id: string): Promise<IJob> {
    const job = await this._request<IJob>(
      `${ROOT}/${encodeURIComponent(id)}/rerun`,
      { method: 'POST' }
    );
    this._update(job);
    return job;
  }

  async delete(id: string, outputs = false): Promise<void> {
    await this._request(
      `${ROOT}/${encodeURIComponent(id)}${outputs ? '?outputs=true' : ''}`,
      { method: 'DELETE' }
    );
    this._jobs = this._jobs.filter(j => j.id !== id);
    this._changed.emit();
  }

  logs(
    id: string,
    replica: string,
    attempt: number,
    offset: number
  ): Promise<Uint8Array> {
    return this._requestBytes(
      `${ROOT}/${encodeURIComponent(id)}/logs?${logQuery(replica, attempt)}&offset=${offset}`
    );
  }

  logDownloadUrl(id: string, replica: string, attempt: number): string {
    return URLExt.join(
      this._baseUrl,
      API_NAMESPACE,
      `${ROOT}/${encodeURIComponent(id)}/logs?${logQuery(replica, attempt)}&download=1`
    );
  }

  dispose(): void {
    this._poll.dispose();
  }

  /** Put a job's newest state in the list (new jobs first) and tell the views. */
  private _update(job: IJob): void {
    const others = this._jobs.filter(j => j.id !== job.id);
    const index = this._jobs.findIndex(j => j.id === job.id);
    this._jobs =
      index < 0
        ? [job, ...others]
        : [...others.slice(0, index), job, ...others.slice(index)];
    this._changed.emit();
  }

  private _request: Request;
  private _requestBytes: RequestBytes;
  private _baseUrl: string;
  private _interval: number;
  private _poll: Poll;
  private _jobs: IJob[] = [];
  private _error: string | null = null;
  private _changed = new Signal<ITrainingModel, void>(this);
}

export namespace TrainingModel {
  export interface IOptions {
    request?: Request;
    requestBytes?: RequestBytes;
    baseUrl?: string;
    /** Seconds between refreshes of the list. */
    refreshInterval?: number;
  }
}

function logQuery(replica: string, attempt: number): string {
  return `replica=${encodeURIComponent(replica)}&attempt=${attempt}`;
}

/**
 * One replica's log of one attempt, followed from the byte offset already shown: each
 * `poll()` asks only for what came after it, so a long log is never read twice and a
 * line split across two reads (even inside a UTF-8 character) is shown whole.
 */
export class LogFollower {
  constructor(
    readonly model: Pick<ITrainingModel, 'logs'>,
    readonly jobId: string,
    readonly replica: string,
    readonly attempt: number
  ) {}

  /** Bytes of the log received so far: the next read starts here. */
  get offset(): number {
    return this._offset;
  }
  /** The text received so far. */
  get text(): string {
    return this._text;
  }
  get changed(): ISignal<LogFollower, string> {
    return this._changed;
  }

  /** Fetch what the log gained; emits the new text (if any) and resolves to it. */
  async poll(): Promise<string> {
    if (this._busy) {
      return '';
    }
    this._busy = true;
    try {
      const bytes = await this.model.logs(
        this.jobId,
        this.replica,
        this.attempt,
        this._offset
      );
      if (bytes.length === 0) {
        return '';
      }
      this._offset += bytes.length;
      const added = this._decoder.decode(bytes, { stream: true });
      this._text += added;
      if (this._text.length > MAX_LOG_CHARS) {
        this._text = this._text.slice(this._text.length - MAX_LOG_CHARS);
      }
      this._changed.emit(added);
      return added;
    } finally {
      this._busy = false;
    }
  }

  private _offset = 0;
  private _text = '';
  private _busy = false;
  private _decoder = new TextDecoder();
  private _changed = new Signal<LogFollower, string>(this);
}

/** Characters of a log kept in the tab (older ones are in the Download). */
export const MAX_LOG_CHARS = 2_000_000;

// ---------------------------------------------------------------------------
// The Run as Training Job… form

/**
 * What the form holds, as the user typed it.
 */
export interface IFormValues {
  path: string;
  image: string;
  size: string;
  workers: number;
  /** `name=value` lines (notebooks). */
  parameters: string;
  /** Arguments, shell-like (scripts). */
  args: string;
  maxRetries: number;
  /** A duration: 3600, 90m, 1h, 2d; empty: none. */
  timeout: string;
}

export function isNotebookPath(path: string | null | undefined): boolean {
  return !!path && path.toLowerCase().endsWith('.ipynb');
}

export function isScriptPath(path: string | null | undefined): boolean {
  return !!path && path.toLowerCase().endsWith('.py');
}

/**
 * A value of a `name=value` parameter: JSON when it reads as a number, boolean or null,
 * else the text itself (quotes around it removed).
 */
function parameterValue(raw: string): string | number | boolean | null {
  const text = raw.trim();
  if (/^(-?\d+(\.\d+)?([eE][-+]?\d+)?|true|false|null)$/.test(text)) {
    return JSON.parse(text);
  }
  const quoted = /^"(.*)"$|^'(.*)'$/.exec(text);
  return quoted ? (quoted[1] ?? quoted[2]) : text;
}

/**
 * `name=value` lines as parameters; throws naming the first line that is not one.
 */
export function parseParameters(text: string): {
  [name: string]: string | number | boolean | null;
} {
  const parameters: { [name: string]: string | number | boolean | null } = {};
  text.split('\n').forEach((line, index) => {
    if (!line.trim()) {
      return;
    }
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/.exec(line);
    if (!match) {
      throw new Error(
        `parameters, line ${index + 1}: write name=value (a Python name), not "${line.trim().slice(0, 40)}"`
      );
    }
    parameters[match[1]] = parameterValue(match[2]);
  });
  return parameters;
}

/**
 * Arguments split as a shell would (spaces, single and double quotes); throws on an
 * unclosed quote.
 */
export function parseArgs(text: string): string[] {
  const args: string[] = [];
  let current = '';
  let quote: string | null = null;
  let started = false;
  for (const char of text) {
    if (quote) {
      if (char === quote) {
        quote = null;
      } else {
        current += char;
      }
    } else if (char === '"' || char === "'") {
      quote = char;
      started = true;
    } else if (/\s/.test(char)) {
      if (started) {
        args.push(current);
        current = '';
        started = false;
      }
    } else {
      current += char;
      started = true;
    }
  }
  if (quote) {
    throw new Error(`args: a ${quote} quote is not closed`);
  }
  if (started) {
    args.push(current);
  }
  return args;
}

/**
 * The spec the form's values ask for; throws with the field's problem.
 */
export function specFromForm(values: IFormValues): IJobSpec {
  const spec: IJobSpec = {
    name: values.path.split('/').pop() ?? values.path,
    workers: values.workers,
    max_retries: values.maxRetries
  };
  if (values.image) {
    spec.image = values.image;
  }
  if (values.size) {
    spec.size = values.size;
  }
  if (isNotebookPath(values.path)) {
    spec.notebook = values.path;
    const parameters = parseParameters(values.parameters);
    if (Object.keys(parameters).length) {
      spec.parameters = parameters;
    }
  } else {
    spec.script = values.path;
    const args = parseArgs(values.args);
    if (args.length) {
      spec.args = args;
    }
  }
  if (values.timeout.trim()) {
    const timeout = values.timeout.trim();
    spec.timeout = /^\d+$/.test(timeout) ? Number(timeout) : timeout;
  }
  return spec;
}

/**
 * The form's state: its values, and the service's dry run of them, asked again (after
 * `delay` ms without changes) each time a field changes, so a refusal (no room, over
 * quota, a size outside my domains) shows before Submit. Answers to older values are
 * dropped.
 */
export class JobFormModel extends DryRunFormModel<IFormValues, IJobSpec> {
  constructor(
    readonly model: Pick<ITrainingModel, 'check'>,
    values: IFormValues,
    delay = 400
  ) {
    super(values, delay);
  }

  /** The spec to submit, or throws with what is wrong in the form. */
  spec(): IJobSpec {
    return specFromForm(this.values);
  }

  protected check(spec: IJobSpec): Promise<string | null> {
    return this.model.check(spec);
  }

  protected accepted(): string {
    return 'Ready to run: it can start now.';
  }
}

/**
 * A job's image and size as the catalog labels them ("PyTorch 2.13 · CPU · 2 vCPU +
 * 4 GiB"), each falling back to its id when the Lab's kernel options lack it; empty
 * when the job has neither.
 */
export function jobChoiceLabel(
  job: Pick<IJob, 'image' | 'size'>,
  options: IKernelOptions | null
): string {
  const image = job.image
    ? (options?.images.find(i => i.id === job.image)?.label ?? job.image)
    : '';
  const size = job.size
    ? (options?.sizes.find(s => s.id === job.size)?.label ?? job.size)
    : '';
  return [image, size].filter(Boolean).join(' · ');
}

/**
 * "2 min", "1 h 5 min": how long a job has been running or ran.
 */
export function formatElapsed(
  start: string | null,
  end: string | null,
  now: Date = new Date()
): string {
  if (!start) {
    return '';
  }
  const seconds = Math.max(
    0,
    ((end ? Date.parse(end) : now.getTime()) - Date.parse(start)) / 1000
  );
  if (seconds < 60) {
    return `${Math.floor(seconds)} s`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min`;
  }
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
}

/**
 * One line about a job for the sidebar and the tab: its status and why.
 */
export function statusLine(job: IJob): string {
  const why =
    job.status === 'queued' && job.queue_reason ? job.queue_reason : job.reason;
  const attempt =
    job.attempt > 1
      ? ` (attempt ${job.attempt} of ${job.max_retries + 1})`
      : '';
  if (why && why.startsWith(job.status)) {
    return `${why}${attempt}`; // "cancelled by ada" says the status already
  }
  return `${job.status}${attempt}${why ? `: ${why}` : ''}`;
}

/**
 * An SVG polyline's points for a curve of (step, value) pairs in a width × height box.
 */
export function sparklinePoints(
  points: ReadonlyArray<[number, number]>,
  width: number,
  height: number
): string {
  if (points.length === 0) {
    return '';
  }
  const steps = points.map(p => p[0]);
  const values = points.map(p => p[1]);
  const [x0, x1] = [Math.min(...steps), Math.max(...steps)];
  const [y0, y1] = [Math.min(...values), Math.max(...values)];
  const x = (s: number) =>
    x1 === x0 ? width / 2 : ((s - x0) / (x1 - x0)) * width;
  const y = (v: number) =>
    y1 === y0 ? height / 2 : height - ((v - y0) / (y1 - y0)) * height;
  return points
    .map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`)
    .join(' ');
}

/**
 * The notebook's saved choice when the user's domains still allow it, else the server's,
 * else '' (the form starts on the first allowed one): a choice saved in another domain
 * must not open the form on a refusal.
 */
export function allowedOr(
  saved: string | undefined,
  server: string | undefined,
  allowed: string[] | undefined
): string {
  if (!allowed) {
    return saved ?? server ?? '';
  }
  for (const id of [saved, server]) {
    if (id && allowed.includes(id)) {
      return id;
    }
  }
  return '';
}
