import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { makeButton } from '../components/button';
import { errorText } from '../components/errors';
import { showLogText } from '../components/logView';
import {
  IJob,
  IJobEvent,
  IJobMetrics,
  IKernelOptions,
  ITrainingModel
} from '../tokens';
import {
  formatElapsed,
  isFinal,
  jobChoiceLabel,
  LogFollower,
  sparklinePoints,
  statusLine
} from './model';

const SVG = 'http://www.w3.org/2000/svg';
/** Reads after a job ended (its last log lines and events may come a moment later). */
const FINAL_ROUNDS = 3;

/**
 * One training job in a main-area tab: status and reason, attempt, per-replica logs
 * (following the tail unless scrolled back, with a Download link), events, a small
 * curve per metric tag, and the actions. Polls while the job is not over, then reads
 * once more and stops.
 */
export class JobView extends Widget {
  constructor(options: JobView.IOptions) {
    super();
    this.jobId = options.jobId;
    this._model = options.model;
    this._actions = options.actions;
    this._kernelOptions = options.kernelOptions ?? (() => null);
    this.addClass('jp-StudioHub-JobView');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', `Training job ${this.jobId}`);
    this.title.label = `Job ${this.jobId}`;
    this.node.dataset.jobId = this.jobId; // Deploy as Endpoint… finds the job by it

    this._heading = document.createElement('h2');
    this._status = document.createElement('p');
    this._status.className = 'jp-StudioHub-JobView-status';
    this._status.setAttribute('role', 'status');
    this._status.setAttribute('aria-label', 'Job status');
    this._details = document.createElement('p');
    this._details.className = 'jp-StudioHub-JobView-details';
    this._error = document.createElement('div');
    this._error.className = 'jp-StudioHub-JobView-error';
    this._error.setAttribute('role', 'alert');

    const actions = document.createElement('div');
    actions.className = 'jp-StudioHub-JobView-actions';
    this._cancel = makeButton({
      variant: 'warn',
      text: 'Cancel',
      label: 'Cancel this job',
      onClick: () => this._actions.cancel(this.jobId)
    });
    this._delete = makeButton({
      variant: 'warn',
      text: 'Delete',
      label: 'Delete this job',
      title: 'Forget this finished job: its logs and code snapshot',
      onClick: () => this._actions.delete(this.jobId)
    });
    this._delete.hidden = true;
    // Deploy as Endpoint… (the same command as the right-click menu), once the job
    // succeeded and left something in its outputs.
    this._deploy = makeButton({
      variant: 'reject',
      text: 'Deploy as Endpoint…',
      label: 'Deploy as Endpoint…',
      title: "Serve a model from the job's outputs as an HTTP endpoint",
      onClick: () => this._job && this._actions.deploy?.(this._job)
    });
    this._deploy.hidden = true;
    actions.append(
      makeButton({
        variant: 'reject',
        text: 'Open in TensorBoard',
        label: 'Open in TensorBoard',
        title: "Open the job's TensorBoard folder in a TensorBoard tab",
        onClick: () => this._job && this._actions.tensorboard(this._job)
      }),
      makeButton({
        variant: 'reject',
        text: 'Open outputs',
        label: 'Open outputs',
        title: "Show the job's outputs folder in the file browser",
        onClick: () => this._job && this._actions.outputs(this._job)
      }),
      this._deploy,
      this._cancel,
      makeButton({
        variant: 'reject',
        text: 'Run again',
        label: 'Run again',
        title: 'Submit the same spec as a new job',
        onClick: () => this._actions.rerun(this.jobId)
      }),
      this._delete
    );

    // Logs: a replica picker, the text, a Download link.
    const logs = document.createElement('section');
    logs.className = 'jp-StudioHub-JobView-logs';
    const logsHeader = document.createElement('header');
    const logsTitle = document.createElement('h3');
    logsTitle.textContent = 'Logs';
    this._replica = document.createElement('select');
    this._replica.className = 'jp-mod-styled jp-StudioHub-JobView-replica';
    this._replica.setAttribute('aria-label', 'Replica');
    this._replica.addEventListener('change', () => this._follow(true));
    this._download = document.createElement('a');
    this._download.textContent = 'Download';
    this._download.setAttribute('aria-label', 'Download this log');
    this._download.setAttribute('download', '');
    logsHeader.append(logsTitle, this._replica, this._download);
    this._log = document.createElement('pre');
    this._log.className = 'jp-StudioHub-JobView-log';
    this._log.setAttribute('role', 'log');
    this._log.setAttribute('aria-label', 'Job log');
    this._log.tabIndex = 0;
    logs.append(logsHeader, this._log);

    const side = document.createElement('div');
    side.className = 'jp-StudioHub-JobView-side';
    const metricsTitle = document.createElement('h3');
    metricsTitle.textContent = 'Metrics';
    this._metrics = document.createElement('ul');
    this._metrics.setAttribute('aria-label', 'Metrics');
    this._metrics.className = 'jp-StudioHub-JobView-metrics';
    const eventsTitle = document.createElement('h3');
    eventsTitle.textContent = 'Events';
    this._events = document.createElement('ol');
    this._events.setAttribute('aria-label', 'Events');
    this._events.className = 'jp-StudioHub-JobView-events';
    side.append(metricsTitle, this._metrics, eventsTitle, this._events);

    const body = document.createElement('div');
    body.className = 'jp-StudioHub-JobView-body';
    body.append(logs, side);
    this.node.append(
      this._heading,
      this._status,
      this._details,
      this._error,
      actions,
      body
    );

    this._poll = new Poll({
      factory: () => this._tick(),
      frequency: { interval: options.interval ?? 1000, backoff: false },
      standby: 'when-hidden',
      name: `studiohub:training-job-${this.jobId}`
    });
  }

  readonly jobId: string;

  /** Our own name for screen readers (MainAreaWidget names its content "main area content"). */
  protected onAfterAttach(): void {
    this.node.setAttribute('aria-label', `Training job ${this.jobId}`);
  }

  get job(): IJob | null {
    return this._job;
  }

  /** Read everything now (after an action). */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    super.dispose();
  }

  /** One round: the job, its log, events and (every few rounds) metrics. */
  private async _tick(): Promise<void> {
    try {
      const job = await this._model.get(this.jobId);
      this._job = job;
      this._renderJob(job);
      this._follow(false);
      await this._follower?.poll();
      const [events, metrics] = await Promise.all([
        this._model.events(this.jobId),
        this._round++ % 5 === 0 || isFinal(job.status)
          ? this._model.metrics(this.jobId).catch(() => null)
          : Promise.resolve(null)
      ]);
      this._renderEvents(events);
      if (metrics) {
        this._renderMetrics(metrics);
      }
      this._error.textContent = '';
      this._finalRounds = isFinal(job.status) ? this._finalRounds + 1 : 0;
      if (this._finalRounds >= FINAL_ROUNDS) {
        // The ended job's last lines and events are shown: stop asking.
        void this._poll.stop();
      }
    } catch (error) {
      this._error.textContent = errorText(error);
    }
  }

  /** Follow the chosen replica's log of the job's current attempt. */
  private _follow(changed: boolean): void {
    const job = this._job;
    if (!job) {
      return;
    }
    const names = job.replicas.length
      ? job.replicas.map(r => r.name)
      : ['worker-0'];
    if (
      names.join() !==
      Array.from(this._replica.options)
        .map(o => o.value)
        .join()
    ) {
      const chosen = this._replica.value;
      this._replica.replaceChildren(...names.map(n => new Option(n, n)));
      this._replica.value = names.includes(chosen) ? chosen : names[0];
    }
    const replica = this._replica.value;
    const attempt = Math.max(1, job.attempt);
    const follower = this._follower;
    if (
      changed ||
      !follower ||
      follower.replica !== replica ||
      follower.attempt !== attempt
    ) {
      this._follower = new LogFollower(
        this._model,
        this.jobId,
        replica,
        attempt
      );
      this._follower.changed.connect(this._renderLog, this);
      this._log.textContent = '';
      this._download.href = this._model.logDownloadUrl(
        this.jobId,
        replica,
        attempt
      );
      if (changed) {
        void this._follower.poll();
      }
    }
  }

  private _renderLog(follower: LogFollower, added: string): void {
    if (follower === this._follower) {
      showLogText(this._log, follower.text, added);
    }
  }

  private _renderJob(job: IJob): void {
    this.title.label = `${job.name} (${job.status})`;
    this.title.caption = `Training job ${job.id}: ${statusLine(job)}`;
    this._heading.textContent = `${job.name} · ${job.id}`;
    this._status.textContent = statusLine(job);
    this._status.dataset.status = job.status;
    this.node.dataset.jobStatus = job.status; // offered on a succeeded job's tab
    this._details.textContent = [
      jobChoiceLabel(job, this._kernelOptions()),
      `attempt ${Math.max(1, job.attempt)} of ${job.max_retries + 1}`,
      `${job.replicas.length || 1} replica${job.replicas.length > 1 ? 's' : ''}`,
      job.started ? `ran ${formatElapsed(job.started, job.finished)}` : ''
    ]
      .filter(Boolean)
      .join(' · ');
    this._cancel.hidden = isFinal(job.status);
    this._delete.hidden = !isFinal(job.status);
    this._offerDeploy(job);
  }

  /** Show Deploy as Endpoint… on a succeeded job whose outputs hold a model (asked once). */
  private _offerDeploy(job: IJob): void {
    const actions = this._actions;
    if (job.status !== 'succeeded' || !actions.deploy || !actions.canDeploy) {
      this._deploy.hidden = true;
      return;
    }
    if (this._deployAsked) {
      return;
    }
    this._deployAsked = true;
    void Promise.resolve(actions.canDeploy(job))
      .catch(() => false)
      .then(can => {
        this._deploy.hidden = !can;
      });
  }

  private _renderEvents(events: IJobEvent[]): void {
    this._events.replaceChildren(
      ...events.map(event => {
        const item = document.createElement('li');
        const time = event.time
          ? new Date(event.time).toLocaleTimeString()
          : '';
        item.textContent = `${time} ${event.message || event.kind}`.trim();
        return item;
      })
    );
  }

  private _renderMetrics(metrics: IJobMetrics): void {
    const tags = Object.keys(metrics.tags).sort();
    if (tags.length === 0) {
      const empty = document.createElement('li');
      empty.textContent = 'No scalars in the job’s TensorBoard folder yet.';
      this._metrics.replaceChildren(empty);
      return;
    }
    this._metrics.replaceChildren(
      ...tags.map(tag => {
        const data = metrics.tags[tag];
        const item = document.createElement('li');
        item.setAttribute('aria-label', `Metric ${tag}`);
        const label = document.createElement('span');
        label.textContent = `${tag}: ${formatNumber(data.latest)} (step ${data.step})`;
        const svg = document.createElementNS(SVG, 'svg');
        svg.setAttribute('viewBox', '0 0 120 32');
        svg.setAttribute('width', '120');
        svg.setAttribute('height', '32');
        svg.setAttribute('role', 'img');
        svg.setAttribute('aria-label', `${tag} curve`);
        const line = document.createElementNS(SVG, 'polyline');
        line.setAttribute('points', sparklinePoints(data.points, 120, 32));
        svg.append(line);
        item.append(label, svg);
        return item;
      })
    );
  }

  private _model: ITrainingModel;
  private _actions: JobView.IActions;
  private _kernelOptions: () => IKernelOptions | null;
  private _job: IJob | null = null;
  private _follower: LogFollower | null = null;
  private _round = 0;
  private _finalRounds = 0;
  private _poll: Poll;
  private _heading: HTMLElement;
  private _status: HTMLElement;
  private _details: HTMLElement;
  private _error: HTMLElement;
  private _cancel: HTMLButtonElement;
  private _delete: HTMLButtonElement;
  private _deploy: HTMLButtonElement;
  private _deployAsked = false;
  private _replica: HTMLSelectElement;
  private _download: HTMLAnchorElement;
  private _log: HTMLPreElement;
  private _metrics: HTMLUListElement;
  private _events: HTMLOListElement;
}

function formatNumber(value: number): string {
  return Math.abs(value) >= 1000 || Number.isInteger(value)
    ? String(value)
    : value.toPrecision(4);
}

export namespace JobView {
  /** What the tab's buttons do (the plugin's commands). */
  export interface IActions {
    cancel(id: string): unknown;
    rerun(id: string): unknown;
    /** Only offered once the job is over. */
    delete(id: string): unknown;
    tensorboard(job: IJob): unknown;
    outputs(job: IJob): unknown;
    /** Deploy as Endpoint… with the job's outputs (absent: not offered). */
    deploy?(job: IJob): unknown;
    /** Whether a succeeded job's outputs hold something to deploy. */
    canDeploy?(job: IJob): boolean | Promise<boolean>;
  }

  export interface IOptions {
    jobId: string;
    model: ITrainingModel;
    actions: IActions;
    /** The catalog's images and sizes, to show their labels rather than ids. */
    kernelOptions?: () => IKernelOptions | null;
    /** Milliseconds between reads while the job runs. */
    interval?: number;
  }
}
