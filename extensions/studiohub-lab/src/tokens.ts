import { Token } from '@lumino/coreutils';
import { ISignal } from '@lumino/signaling';

/**
 * Every command of the StudioHub extension: `studiohub:<verb>-<noun>`. The ids are
 * what shortcuts and users' settings name, so they never change once shipped.
 */
export enum CommandIDs {
  openTensorBoard = 'studiohub:open-tensorboard',
  reloadTensorBoard = 'studiohub:reload-tensorboard',
  stopTensorBoard = 'studiohub:stop-tensorboard',
  showTensorBoards = 'studiohub:show-tensorboards',
  switchKernel = 'studiohub:switch-kernel',
  changeServer = 'studiohub:change-server',
  shareNotebook = 'studiohub:share-notebook',
  showShared = 'studiohub:show-shared',
  openShare = 'studiohub:open-share',
  copyShareLink = 'studiohub:copy-share-link',
  copyShare = 'studiohub:copy-share',
  revokeShare = 'studiohub:revoke-share',
  runTrainingJob = 'studiohub:run-training-job',
  openTrainingJob = 'studiohub:open-training-job',
  cancelTrainingJob = 'studiohub:cancel-training-job',
  rerunTrainingJob = 'studiohub:rerun-training-job',
  deleteTrainingJob = 'studiohub:delete-training-job',
  showTrainingJobs = 'studiohub:show-training-jobs',
  deployEndpoint = 'studiohub:deploy-endpoint',
  openEndpoint = 'studiohub:open-endpoint',
  setEndpointTraffic = 'studiohub:set-endpoint-traffic',
  rollbackEndpoint = 'studiohub:rollback-endpoint',
  deleteEndpoint = 'studiohub:delete-endpoint',
  showEndpoints = 'studiohub:show-endpoints'
}

/**
 * The plugin ids, also the keys of their settings (schema/<name>.json).
 */
export const PLUGIN_IDS = {
  tensorboard: '@studiohub/lab:tensorboard',
  tensorboardPanel: '@studiohub/lab:tensorboard-panel',
  switcher: '@studiohub/lab:switcher',
  sharing: '@studiohub/lab:sharing',
  sharedPanel: '@studiohub/lab:shared-panel',
  training: '@studiohub/lab:training',
  trainingPanel: '@studiohub/lab:training-panel',
  endpoints: '@studiohub/lab:endpoints',
  endpointsPanel: '@studiohub/lab:endpoints-panel'
} as const;

// ---------------------------------------------------------------------------
// TensorBoard

/**
 * One run of a TensorBoard: a folder and the name TensorBoard shows for it.
 */
export interface ITensorBoardRun {
  name: string;
  folder: string;
}

/**
 * A TensorBoard as the server extension reports it.
 */
export interface ITensorBoard {
  id: string;
  folders: string[];
  runs: ITensorBoardRun[];
  status: 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';
  error: string | null;
  url: string;
  pid: number | null;
  isolation: string | null;
  started: number;
  uptime: number;
  idle: number;
}

/**
 * The user's TensorBoards: the list, and the actions on them.
 */
export interface ITensorBoardModel {
  /**
   * The last list fetched from the server.
   */
  readonly tensorboards: ReadonlyArray<ITensorBoard>;
  /**
   * Emitted when the list changes.
   */
  readonly changed: ISignal<ITensorBoardModel, ReadonlyArray<ITensorBoard>>;
  /**
   * Start (or reuse) the TensorBoard for these folders; resolves at once.
   */
  open(folders: string[]): Promise<ITensorBoard>;
  /**
   * Resolve once the TensorBoard is running, or has failed.
   */
  waitReady(id: string): Promise<ITensorBoard>;
  restart(id: string): Promise<ITensorBoard>;
  stop(id: string): Promise<ITensorBoard>;
  refresh(): Promise<void>;
}

export const ITensorBoardModel = new Token<ITensorBoardModel>(
  '@studiohub/lab:ITensorBoardModel',
  "The user's running TensorBoards."
);

// ---------------------------------------------------------------------------
// Switcher: one notebook's image and size

/**
 * An image of the catalog, as the hub offers it to this user.
 */
export interface IImageOption {
  id: string;
  label: string;
  display_name: string;
  framework: string;
  framework_version: string;
  accelerator: string;
  kernel_name: string;
  description: string;
}

/**
 * An instance size of the catalog, as the hub offers it to this user.
 */
export interface ISizeOption {
  id: string;
  label: string;
  cpus: number;
  memory: number;
  gpus: number;
}

/**
 * What this user may choose; `unavailable` maps "image/size" to the reason it cannot run.
 */
export interface IKernelOptions {
  images: IImageOption[];
  sizes: ISizeOption[];
  unavailable: { [pair: string]: string };
  server: { image?: string; size?: string };
}

/**
 * A notebook's image and size (saved as `metadata.studiohub`).
 */
export interface IChoice {
  image: string;
  size: string;
}

/**
 * The server's verdict on a choice, and the kernel to restart into.
 */
export interface IChoiceVerdict extends IChoice {
  kernel_name: string;
  image_label: string;
  size_label: string;
}

/**
 * One kernel: where it runs, its live usage, why it last died, a saved choice not used.
 */
export interface IKernelReport {
  id: string;
  choice: {
    image: string | null;
    size: string | null;
    image_label: string | null;
    size_label: string | null;
    limits: { cpus: number | null; memory: number | null; gpus: number };
    placed: boolean;
  };
  usage: {
    cpu_percent: number | null;
    memory: number | null;
    memory_limit: number | null;
    gpu_memory: number | null;
  };
  last_exit: { reason: 'oom' | 'died'; message: string; time: string } | null;
  fallback: { image: string; size: string; reason: string } | null;
}

/**
 * What the switcher asks of a notebook's session: the Lab side of a switch, which the
 * model drives without knowing JupyterLab's session classes.
 */
export interface INotebookSession {
  /** The notebook's path, under which the server records its choice. */
  readonly path: string;
  /** The notebook's display name, for notices. */
  readonly name: string;
  /** `metadata.studiohub` of the notebook, when it holds an image and a size. */
  savedChoice(): IChoice | null;
  /** Keep the choice in the notebook (saved with it). */
  saveChoice(choice: IChoice): void;
  /**
   * The id of the kernel the server really runs for this notebook (after resyncing
   * with it), or null when it runs none.
   */
  liveKernel(): Promise<string | null>;
  /**
   * Restart this notebook's kernel as `kernelName`, replacing `old` (null: start one).
   * Rejects with the reason the server gave (the hub's wording) and keeps the old kernel.
   */
  restart(kernelName: string, old: string | null): Promise<void>;
}

/**
 * Something a user must be told about a notebook's kernel, with the choice that would
 * help (null when none can run).
 */
export type IKernelNotice =
  | {
      kind: 'exit';
      exit: NonNullable<IKernelReport['last_exit']>;
    }
  | {
      kind: 'fallback';
      fallback: NonNullable<IKernelReport['fallback']>;
      nearest: IChoice | null;
    }
  | { kind: 'foreign-image'; saved: IChoice; nearest: IChoice | null };

/**
 * One notebook's kernel as the switcher sees it: where it runs and what it uses (its
 * report, polled), a switch in progress, and notices about it.
 */
export interface INotebookKernel {
  readonly session: INotebookSession;
  /** The kernel shown; null while the notebook has none. */
  kernelId: string | null;
  /** The last report of that kernel, or null before the first one. */
  readonly report: IKernelReport | null;
  /** A transient label ("Switching to …") shown until the next report. */
  readonly pending: string | null;
  /** Whether a switch of this notebook is under way (a second one is refused). */
  readonly switching: boolean;
  /** Emitted when the report, the pending label or `switching` changes. */
  readonly changed: ISignal<INotebookKernel, void>;
  /** Emitted when the user must be told something about this kernel. */
  readonly notice: ISignal<INotebookKernel, IKernelNotice>;
  /** The choice a picker starts from: saved, else where the kernel runs, else the server's. */
  shownChoice(options: IKernelOptions): Partial<IChoice>;
  /** Fetch the kernel's report now. */
  refresh(): Promise<void>;
  /**
   * Record the choice and restart only this notebook's kernel on it; resolves to the
   * label of the new image and size, rejects with the server's reason.
   */
  switchTo(choice: IChoice): Promise<string>;
  /** Tell the model a kernel's new status (a death is explained, a fallback told once). */
  statusChanged(kernelId: string, status: string): void;
  /** Tell of a saved image this user may not use (a notebook made elsewhere). */
  checkSavedImage(): Promise<void>;
  readonly isDisposed: boolean;
  dispose(): void;
}

/**
 * The per-notebook image and size switcher: the hub's options for this user, each
 * open notebook's kernel, and the server's restart on another image and size.
 */
export interface ISwitcher {
  /** The options last fetched, or null before the first answer. */
  readonly options: IKernelOptions | null;
  /** Fetch the options, counting `replacing`'s size as free. */
  loadOptions(replacing?: string): Promise<IKernelOptions>;
  /** The model of a notebook's kernel, made on first call for that notebook. */
  track(notebook: object, session: INotebookSession): INotebookKernel;
  /** The model of a tracked notebook. */
  find(notebook: object): INotebookKernel | undefined;
  /** Ask the hub to restart this whole server on `choice`; resolves to its progress page. */
  restartServer(choice: IChoice): Promise<IChoice & { pending_url: string }>;
}

export const ISwitcher = new Token<ISwitcher>(
  '@studiohub/lab:ISwitcher',
  "Each notebook's image and size, and the hub's options for this user."
);

// ---------------------------------------------------------------------------
// Sharing

/**
 * A domain the user can share with (a catalog domain they belong to).
 */
export interface IDomain {
  id: string;
  name: string;
}

/**
 * A shared notebook as the sharing service lists it (docs/sharing.md, "The API").
 */
export interface IShare {
  id: string;
  /** The preview's path on the hub, e.g. `/services/sharing/s/<id>`. */
  url: string;
  title: string;
  name: string;
  author: string;
  domain: string;
  domain_name: string;
  created: string;
  updated: string;
  version: number;
  revoked: string | null;
  /** Only for the author's own shares. */
  views?: number;
  /** Only in "recently opened". */
  opened?: string;
}

/**
 * What the Share… dialog asks for.
 */
export interface IShareRequest {
  /** The notebook's path in this server. */
  path: string;
  /** Publish a new version to this link instead of creating a new one. */
  shareId: string | null;
  domain: string;
  includeOutputs: boolean;
  note: string;
}

/**
 * Notebook sharing for this user: the three lists, and the actions.
 */
export interface ISharingModel {
  readonly mine: ReadonlyArray<IShare>;
  readonly withMyDomains: ReadonlyArray<IShare>;
  readonly recent: ReadonlyArray<IShare>;
  /** The search of "Shared with my domains" (title or author). */
  readonly query: string;
  /** Why the last refresh failed, or null. */
  readonly error: string | null;
  readonly changed: ISignal<ISharingModel, void>;
  refresh(): Promise<void>;
  search(query: string): Promise<void>;
  domains(): Promise<IDomain[]>;
  find(id: string): IShare | undefined;
  /** Share (a new link) or publish a new version; resolves to the link's share. */
  share(request: IShareRequest): Promise<IShare>;
  revoke(id: string): Promise<void>;
  /** Copy into this user's home; resolves to the copy's path. */
  copy(id: string): Promise<string>;
  /** The notebook last shared to this link from this browser, if any. */
  pathOf(id: string): string | null;
}

export const ISharingModel = new Token<ISharingModel>(
  '@studiohub/lab:ISharingModel',
  "The user's shared notebooks and the sharing service's actions."
);

// ---------------------------------------------------------------------------
// Training jobs (docs/training.md)

export type JobStatus =
  'queued' | 'starting' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/**
 * What a job runs and where: the jobs service's spec (one of notebook, script, module
 * or command).
 */
export interface IJobSpec {
  image?: string;
  size?: string;
  name?: string;
  notebook?: string;
  script?: string;
  module?: string;
  command?: string[] | string;
  args?: string[];
  parameters?: { [name: string]: string | number | boolean | null };
  workers?: number;
  parameter_servers?: number;
  max_retries?: number;
  timeout?: number | string | null;
  env?: { [name: string]: string };
}

/**
 * A training job as the jobs service reports it.
 */
export interface IJob {
  id: string;
  name: string;
  user: string;
  status: JobStatus;
  reason: string;
  queue_reason: string;
  spec: IJobSpec;
  image: string | null;
  size: string | null;
  attempt: number;
  max_retries: number;
  created: string | null;
  started: string | null;
  finished: string | null;
  replicas: { name: string; running: boolean; exit_code: number | null }[];
  /** Relative to the user's home, as the file browser shows them. */
  dirs: {
    home: string;
    code: string;
    outputs: string;
    checkpoints: string;
    tensorboard: string;
  };
}

export interface IJobEvent {
  time: string | null;
  kind: string;
  message: string;
}

/**
 * Scalars of the job's TensorBoard files, per tag (at most 200 points each).
 */
export interface IJobMetrics {
  tags: {
    [tag: string]: { latest: number; step: number; points: [number, number][] };
  };
}

/**
 * The user's training jobs: the list (polled), and the actions on them.
 */
export interface ITrainingModel {
  readonly jobs: ReadonlyArray<IJob>;
  /** Why the last refresh failed, or null. */
  readonly error: string | null;
  readonly changed: ISignal<ITrainingModel, void>;
  refresh(): Promise<void>;
  find(id: string): IJob | undefined;
  /** Would this spec start now? Resolves to null when so, else the service's reason. */
  check(spec: IJobSpec): Promise<string | null>;
  submit(spec: IJobSpec): Promise<IJob>;
  get(id: string): Promise<IJob>;
  events(id: string): Promise<IJobEvent[]>;
  metrics(id: string): Promise<IJobMetrics>;
  cancel(id: string): Promise<IJob>;
  rerun(id: string): Promise<IJob>;
  /**
   * Forget a finished job: its logs and code snapshot; with `outputs`, its outputs,
   * checkpoints and TensorBoard files too. A job not over yet is refused (409).
   */
  delete(id: string, outputs?: boolean): Promise<void>;
  /** A replica's log from byte `offset` (no follow): the bytes past it. */
  logs(
    id: string,
    replica: string,
    attempt: number,
    offset: number
  ): Promise<Uint8Array>;
  /** The URL that downloads a replica's whole log of an attempt. */
  logDownloadUrl(id: string, replica: string, attempt: number): string;
}

export const ITrainingModel = new Token<ITrainingModel>(
  '@studiohub/lab:ITrainingModel',
  "The user's training jobs and the jobs service's actions."
);

// ---------------------------------------------------------------------------
// Model endpoints (issue #15; the models service's management API)

export type EndpointStatus = 'ready' | 'starting' | 'failed' | 'updating';

/**
 * One process serving a version of an endpoint.
 */
export interface IEndpointReplica {
  name: string;
  state: 'ready' | 'starting' | 'restarting' | 'failed' | 'stopped';
  restarts: number;
  reason: string;
}

/**
 * A version of an endpoint: a model deployed on an image and size, its replicas and
 * its share of the traffic (percent).
 */
export interface IEndpointVersion {
  version: number;
  format: string;
  image: string;
  size: string;
  replicas: IEndpointReplica[];
  traffic: number;
  status: 'serving' | 'starting' | 'draining' | 'failed' | 'retired';
  /** The model's path relative to the home, as deployed. */
  source: string;
  created: string;
}

/**
 * A model endpoint as the models service reports it.
 */
export interface IEndpoint {
  name: string;
  user: string;
  domain: string;
  /** Its path on the hub, e.g. `/services/models/iris/`. */
  url: string;
  created: string;
  status: EndpointStatus;
  versions: IEndpointVersion[];
}

/**
 * What a deploy asks for: a new endpoint, or a new version of one of mine.
 */
export interface IEndpointSpec {
  name: string;
  /** A path relative to the home, or a training job's output. */
  model: string | { job: string; path: string };
  image?: string;
  size?: string;
  replicas?: number;
  /** The new version's share of the traffic once ready (percent; default all). */
  canary?: number;
}

/**
 * Counts and latencies of a version or one of its replicas.
 */
export interface IServingStats {
  requests: number;
  rps: number;
  p50_ms: number | null;
  p99_ms: number | null;
  errors: number;
}

export interface IVersionMetrics extends IServingStats {
  replicas: { [replica: string]: Partial<IServingStats> };
}

/**
 * `GET endpoints/<name>/metrics`: per version (keys are version numbers).
 */
export interface IEndpointMetrics {
  versions: { [version: string]: IVersionMetrics };
}

/**
 * An endpoint token; `token` (the secret) only in the answer that created it.
 */
export interface IEndpointToken {
  id: string;
  created: string;
  /** What uses it, as its owner wrote when creating it ('' for none). */
  note?: string;
  token?: string;
}

/** TensorFlow Serving's REST API (`v1`) or the Open Inference Protocol (`v2`). */
export type PredictProtocol = 'v1' | 'v2';

/** A JSON object, as a request body or an answer. */
export interface IJSONObject {
  [key: string]: unknown;
}

/**
 * One input or output tensor of a model's V2 metadata.
 */
export interface ITensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

/**
 * `GET /v2/models/<name>` of an endpoint (the Open Inference Protocol's metadata).
 */
export interface IModelMetadata {
  name: string;
  versions?: string[];
  platform?: string;
  inputs?: ITensorMetadata[];
  outputs?: ITensorMetadata[];
}

/**
 * The user's model endpoints: the list (polled while someone watches it), the
 * management actions and "try it".
 */
export interface IEndpointsModel {
  readonly endpoints: ReadonlyArray<IEndpoint>;
  /** Why the last refresh failed, or null. */
  readonly error: string | null;
  readonly changed: ISignal<IEndpointsModel, void>;
  /**
   * Poll the list (and each endpoint's metrics) while the returned disposer is not
   * called: the sidebar watches while it is shown.
   */
  watch(): () => void;
  refresh(): Promise<void>;
  find(name: string): IEndpoint | undefined;
  /** The metrics last fetched with the list, if any. */
  metricsOf(name: string): IEndpointMetrics | undefined;
  /** Would this deploy go ahead? Resolves to null when so, else the service's reason. */
  check(spec: IEndpointSpec): Promise<string | null>;
  deploy(spec: IEndpointSpec): Promise<IEndpoint>;
  get(name: string): Promise<IEndpoint>;
  metrics(name: string): Promise<IEndpointMetrics>;
  /** The newest version's share of the traffic (100 promotes it). */
  setTraffic(name: string, canary: number): Promise<IEndpoint>;
  rollback(name: string): Promise<IEndpoint>;
  delete(name: string): Promise<void>;
  /** A replica's log from byte `offset`: the bytes past it. */
  logs(
    name: string,
    version: number,
    replica: string,
    offset: number
  ): Promise<Uint8Array>;
  /** The model's V2 metadata (input names, shapes, types). */
  metadata(name: string, version?: number): Promise<IModelMetadata>;
  /** Send a request to the endpoint; resolves to its answer, rejects with its words. */
  predict(
    name: string,
    protocol: PredictProtocol,
    body: IJSONObject,
    version?: number
  ): Promise<unknown>;
  tokens(name: string): Promise<IEndpointToken[]>;
  /** A new token (`note`: what will use it): its secret is in this answer only. */
  createToken(name: string, note?: string): Promise<IEndpointToken>;
  revokeToken(name: string, id: string): Promise<void>;
}

export const IEndpointsModel = new Token<IEndpointsModel>(
  '@studiohub/lab:IEndpointsModel',
  "The user's model endpoints and the models service's actions."
);
