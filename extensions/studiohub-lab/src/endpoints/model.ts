import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { requestAPI } from '../api';
import { DryRunFormModel } from '../components/dryRun';
import { errorText } from '../components/errors';
import {
  checkSpec,
  Request,
  RequestBytes,
  requestBytes
} from '../components/requests';
import {
  IEndpoint,
  IEndpointMetrics,
  IEndpointSpec,
  IEndpointsModel,
  IEndpointToken,
  IJSONObject,
  IModelMetadata,
  PredictProtocol
} from '../tokens';

/**
 * The endpoints routes of the server extension (`studiohub/api/v1/endpoints/…`), which
 * forward to the hub's models service with this server's token.
 */
const ROOT = 'endpoints';

/** The service's endpoint names. */
export const ENDPOINT_NAME = /^[a-z][a-z0-9-]{0,39}$/;

/** `{endpoints: [...]}` (the service's list) or a bare list. */
function listOf<T>(answer: unknown, key: string): T[] {
  if (Array.isArray(answer)) {
    return answer as T[];
  }
  if (typeof answer === 'object' && answer !== null) {
    const list = (answer as { [key: string]: unknown })[key];
    if (Array.isArray(list)) {
      return list as T[];
    }
  }
  return [];
}

function path(name: string, ...parts: string[]): string {
  return [ROOT, encodeURIComponent(name), ...parts].join('/');
}

/**
 * The user's model endpoints, with each one's metrics, refreshed every few seconds
 * while a view watches them (the sidebar while shown) and JupyterLab is visible.
 */
export class EndpointsModel implements IEndpointsModel {
  constructor(options: EndpointsModel.IOptions = {}) {
    this._request = options.request ?? requestAPI;
    this._requestBytes = options.requestBytes ?? requestBytes;
    this._poll = new Poll({
      factory: () => this.refresh(),
      frequency: {
        interval: (options.refreshInterval ?? 5) * 1000,
        backoff: true,
        max: 60 * 1000
      },
      // Nobody looking: no calls at all (the service is asked only for what is shown).
      standby: () => this._watchers === 0 || 'when-hidden',
      name: 'studiohub:endpoints'
    });
  }

  get endpoints(): ReadonlyArray<IEndpoint> {
    return this._endpoints;
  }
  get error(): string | null {
    return this._error;
  }
  get changed(): ISignal<IEndpointsModel, void> {
    return this._changed;
  }
  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  watch(): () => void {
    this._watchers++;
    void this._poll.refresh();
    let released = false;
    return () => {
      if (!released) {
        released = true;
        this._watchers--;
      }
    };
  }

  async refresh(): Promise<void> {
    try {
      const answer = await this._request<unknown>(ROOT);
      this._endpoints = listOf<IEndpoint>(answer, 'endpoints');
      this._error = null;
    } catch (error) {
      this._error = errorText(error);
      this._changed.emit();
      throw error;
    }
    // Each endpoint's numbers; one that fails keeps its last ones.
    const names = this._endpoints.map(e => e.name);
    const metrics = await Promise.all(
      names.map(name => this.metrics(name).catch(() => undefined))
    );
    const kept = new Map<string, IEndpointMetrics>();
    names.forEach((name, index) => {
      const value = metrics[index] ?? this._metrics.get(name);
      if (value) {
        kept.set(name, value);
      }
    });
    this._metrics = kept;
    this._changed.emit();
  }

  find(name: string): IEndpoint | undefined {
    return this._endpoints.find(e => e.name === name);
  }

  metricsOf(name: string): IEndpointMetrics | undefined {
    return this._metrics.get(name);
  }

  check(spec: IEndpointSpec): Promise<string | null> {
    return checkSpec(this._request, ROOT, spec);
  }

  async deploy(spec: IEndpointSpec): Promise<IEndpoint> {
    const endpoint = await this._request<IEndpoint>(ROOT, {
      method: 'POST',
      body: JSON.stringify(spec)
    });
    this._update(endpoint);
    return endpoint;
  }

  async get(name: string): Promise<IEndpoint> {
    const endpoint = await this._request<IEndpoint>(path(name));
    this._update(endpoint);
    return endpoint;
  }

  metrics(name: string): Promise<IEndpointMetrics> {
    return this._request<IEndpointMetrics>(path(name, 'metrics'));
  }

  async setTraffic(name: string, canary: number): Promise<IEndpoint> {
    const endpoint = await this._request<IEndpoint>(path(name, 'traffic'), {
      method: 'POST',
      body: JSON.stringify({ canary })
    });
    this._update(endpoint);
    return endpoint;
  }

  async rollback(name: string): Promise<IEndpoint> {
    const endpoint = await this._request<IEndpoint>(path(name, 'rollback'), {
      method: 'POST'
    });
    this._update(endpoint);
    return endpoint;
  }

  async delete(name: string): Promise<void> {
    await this._request(path(name), { method: 'DELETE' });
    this._endpoints = this._endpoints.filter(e => e.name !== name);
    this._metrics.delete(name);
    this._changed.emit();
  }

  logs(
    name: string,
    version: number,
    replica: string,
    offset: number
  ): Promise<Uint8Array> {
    const query = `version=${version}&replica=${encodeURIComponent(replica)}&offset=${offset}`;
    return this._requestBytes(`${path(name, 'logs')}?${query}`);
  }

  metadata(name: string, version?: number): Promise<IModelMetadata> {
    const query = version ? `?version=${version}` : '';
    return this._request<IModelMetadata>(`${path(name, 'metadata')}${query}`);
  }

  predict(
    name: string,
    protocol: PredictProtocol,
    body: IJSONObject,
    version?: number
  ): Promise<unknown> {
    const request: IJSONObject = { protocol, body };
    if (version) {
      request.version = version;
    }
    return this._request<unknown>(path(name, 'predict'), {
      method: 'POST',
      body: JSON.stringify(request)
    });
  }

  async tokens(name: string): Promise<IEndpointToken[]> {
    return listOf<IEndpointToken>(
      await this._request<unknown>(path(name, 'tokens')),
      'tokens'
    );
  }

  createToken(name: string, note = ''): Promise<IEndpointToken> {
    return this._request<IEndpointToken>(path(name, 'tokens'), {
      method: 'POST',
      body: JSON.stringify({ note })
    });
  }

  async revokeToken(name: string, id: string): Promise<void> {
    await this._request(path(name, 'tokens', encodeURIComponent(id)), {
      method: 'DELETE'
    });
  }

  dispose(): void {
    this._poll.dispose();
  }

  /** Put an endpoint's newest state in the list (new ones first) and tell the views. */
  private _update(endpoint: IEndpoint): void {
    const index = this._endpoints.findIndex(e => e.name === endpoint.name);
    this._endpoints =
      index < 0
        ? [endpoint, ...this._endpoints]
        : this._endpoints.map((e, i) => (i === index ? endpoint : e));
    this._changed.emit();
  }

  private _request: Request;
  private _requestBytes: RequestBytes;
  private _poll: Poll;
  private _watchers = 0;
  private _endpoints: IEndpoint[] = [];
  private _metrics = new Map<string, IEndpointMetrics>();
  private _error: string | null = null;
  private _changed = new Signal<IEndpointsModel, void>(this);
}

export namespace EndpointsModel {
  export interface IOptions {
    request?: Request;
    requestBytes?: RequestBytes;
    /** Seconds between refreshes of the list while watched. */
    refreshInterval?: number;
  }
}

// ---------------------------------------------------------------------------
// What the views show

/** "1.2 ms", "—" when unknown. */
export function formatMs(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    return '—';
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
}

/** What the error counts are (the models gateway's meter, docs/endpoints.md). */
export const ERRORS_MEANING =
  'Answers with status 500 or more (the model or a replica failed), counted by the models gateway since it started. Refused requests (4xx: bad input, no access) are not counted.';

/**
 * The whole endpoint's numbers: requests/s and errors summed over versions, the
 * latencies of the version taking most traffic (percentiles do not add up).
 */
export function endpointStats(
  endpoint: IEndpoint,
  metrics: IEndpointMetrics | undefined
): string {
  if (!metrics) {
    return '';
  }
  const versions = Object.keys(metrics.versions);
  if (versions.length === 0) {
    return '';
  }
  let rps = 0;
  let errors = 0;
  for (const key of versions) {
    rps += metrics.versions[key].rps ?? 0;
    errors += metrics.versions[key].errors ?? 0;
  }
  const main = [...endpoint.versions]
    .filter(v => metrics.versions[String(v.version)])
    .sort((a, b) => b.traffic - a.traffic)[0];
  const latency = main ? metrics.versions[String(main.version)] : undefined;
  return [
    `${rps.toFixed(rps < 10 ? 1 : 0)} req/s`,
    `p50 ${formatMs(latency?.p50_ms)}`,
    `p99 ${formatMs(latency?.p99_ms)}`,
    `${errors} error${errors === 1 ? '' : 's'} (5xx)`
  ].join(' · ');
}

/** The versions still in use, newest first. */
export function liveVersions(endpoint: IEndpoint): IEndpoint['versions'] {
  return endpoint.versions
    .filter(v => v.status !== 'retired')
    .sort((a, b) => b.version - a.version);
}

/**
 * What the service's describe says besides the versions: the live version and the
 * canary serving beside it (null when none; absent from an older service's answer).
 */
interface IEndpointRoutes {
  live?: number | null;
  canary?: number | null;
  /** What a rollback returns to: the version that served before the live one. */
  previous?: number | null;
}

/** The serving versions, newest first. */
function servingVersions(endpoint: IEndpoint): IEndpoint['versions'] {
  return liveVersions(endpoint).filter(v => v.status === 'serving');
}

/** The canary: a newer version serving beside the live one, or null. */
export function canaryVersion(endpoint: IEndpoint): number | null {
  const routes = endpoint as IEndpoint & IEndpointRoutes;
  if (routes.canary !== undefined) {
    return routes.canary;
  }
  const serving = servingVersions(endpoint);
  return serving.length > 1 ? serving[0].version : null;
}

/** The version taking the traffic the canary does not, or null when none serves. */
export function liveVersion(endpoint: IEndpoint): number | null {
  const routes = endpoint as IEndpoint & IEndpointRoutes;
  if (routes.live !== undefined) {
    return routes.live;
  }
  const canary = canaryVersion(endpoint);
  const live = servingVersions(endpoint).find(v => v.version !== canary);
  return live?.version ?? null;
}

/**
 * Whether the traffic can be split: two versions serve (the service refuses a share
 * with one, "deploy another to split the traffic").
 */
export function canSplitTraffic(endpoint: IEndpoint): boolean {
  return canaryVersion(endpoint) !== null;
}

/**
 * What Rollback would do, as the service decides it, or null when there is nothing
 * to roll back to: a starting version or a canary is dropped; otherwise the newest
 * retired version before the live one starts again.
 */
export function rollbackPlan(endpoint: IEndpoint): string | null {
  const live = liveVersion(endpoint);
  const keeps = live !== null ? `; version ${live} keeps all traffic` : '';
  const starting = endpoint.versions
    .filter(v => v.status === 'starting')
    .map(v => v.version)
    .sort((a, b) => b - a);
  const canary = canaryVersion(endpoint);
  if (starting.length > 0) {
    // A first version still starting has nothing to go back to: Delete does that.
    return live === null && canary === null
      ? null
      : `Stop version ${starting.join(', ')}, still starting${keeps}`;
  }
  if (canary !== null) {
    return `Retire version ${canary}${keeps}`;
  }
  // The service says what a rollback returns to (the version that served before).
  const before = (endpoint as IEndpoint & IEndpointRoutes).previous ?? null;
  if (before === null) {
    return null;
  }
  return live !== null
    ? `Start version ${before} again; it replaces version ${live} once ready`
    : `Start version ${before} again`;
}

/** "v2 10% · v1 90%": the traffic split of the versions in use. */
export function trafficLine(endpoint: IEndpoint): string {
  return liveVersions(endpoint)
    .map(
      v =>
        `v${v.version} ${v.traffic}%${v.status === 'serving' ? '' : ` (${v.status})`}`
    )
    .join(' · ');
}

/**
 * A name for a new endpoint from a model's path: a training job's outputs give
 * `job-<id>`, anything else its file or folder name, as the service spells names.
 */
export function suggestName(modelPath: string): string {
  const job = /(?:^|\/)studiohub-jobs\/([0-9a-zA-Z_-]+)\/outputs(?:\/|$)/.exec(
    modelPath
  );
  const raw = job
    ? `job-${job[1]}`
    : (modelPath.replace(/\/+$/, '').split('/').pop() ?? '').replace(
        /\.[^.]+$/,
        ''
      );
  const name = raw
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^[^a-z]+/, '')
    .replace(/-+$/, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return name || 'model';
}

/** Files the models service can deploy by themselves (a folder can be any format). */
export const MODEL_EXTENSIONS = [
  '.onnx',
  '.pt',
  '.pt2',
  '.ts',
  '.torchscript',
  '.pb',
  '.json',
  '.params'
];

export function isModelFile(filePath: string): boolean {
  const lower = filePath.toLowerCase();
  return MODEL_EXTENSIONS.some(ext => lower.endsWith(ext));
}

// ---------------------------------------------------------------------------
// The Deploy as Endpoint… form

/**
 * What the form holds, as the user typed it.
 */
export interface IDeployValues {
  name: string;
  model: string;
  image: string;
  size: string;
  replicas: number;
  /** The new version's share in percent; null: the service's default (all of it). */
  canary: number | null;
}

/**
 * The spec the form's values ask for; throws with the field's problem.
 */
export function specFromDeploy(values: IDeployValues): IEndpointSpec {
  const name = values.name.trim();
  if (!ENDPOINT_NAME.test(name)) {
    throw new Error(
      `name: "${name.slice(0, 40)}" is not an endpoint name (1 to 40 lowercase letters, digits and dashes, starting with a letter)`
    );
  }
  const model = values.model.trim().replace(/^\/+/, '');
  if (!model) {
    throw new Error('model: choose a model file or folder in your home');
  }
  if (!Number.isInteger(values.replicas) || values.replicas < 1) {
    throw new Error('replicas: a whole number, 1 or more');
  }
  const spec: IEndpointSpec = { name, model, replicas: values.replicas };
  if (values.image) {
    spec.image = values.image;
  }
  if (values.size) {
    spec.size = values.size;
  }
  if (values.canary !== null) {
    if (
      !Number.isFinite(values.canary) ||
      values.canary < 0 ||
      values.canary > 100
    ) {
      throw new Error('canary: a share between 0 and 100 %');
    }
    spec.canary = values.canary;
  }
  return spec;
}

/**
 * The form's state: its values, and the service's dry run (`?check=true`) of them,
 * asked again `delay` ms after the last change, so a refusal (an unknown format, no
 * room, a name taken by someone else) shows before Deploy. Answers to older values
 * are dropped.
 */
export class DeployFormModel extends DryRunFormModel<
  IDeployValues,
  IEndpointSpec
> {
  constructor(
    readonly model: Pick<IEndpointsModel, 'check' | 'find'>,
    values: IDeployValues,
    delay = 400
  ) {
    super(values, delay);
  }

  /** Whether the name is one of my endpoints (the deploy adds a version to it). */
  get isNewVersion(): boolean {
    return !!this.model.find(this.values.name.trim());
  }

  /**
   * What a new version of the named endpoint keeps unless changed: its serving (else
   * newest) version's image, size and replicas; null for a new endpoint.
   */
  inherited(): Pick<IDeployValues, 'image' | 'size' | 'replicas'> | null {
    const endpoint = this.model.find(this.values.name.trim());
    if (!endpoint || endpoint.versions.length === 0) {
      return null;
    }
    const live = liveVersion(endpoint);
    const v =
      endpoint.versions.find(x => x.version === live) ??
      [...endpoint.versions].sort((a, b) => b.version - a.version)[0];
    return { image: v.image, size: v.size, replicas: v.replicas.length };
  }

  /** The spec to deploy, or throws with what is wrong in the form. */
  spec(): IEndpointSpec {
    return specFromDeploy(this.values);
  }

  protected missing(values: Readonly<IDeployValues>): string | null {
    const name = values.name.trim();
    const model = values.model.trim();
    if (!name && !model) {
      return 'Name the endpoint and choose the model to deploy.';
    }
    if (!name) {
      return 'Name the endpoint: lowercase letters, digits and dashes (e.g. iris).';
    }
    return model ? null : 'Choose the model: a file or folder in your home.';
  }

  protected check(spec: IEndpointSpec): Promise<string | null> {
    return this.model.check(spec);
  }

  protected accepted(spec: IEndpointSpec): string {
    return this.isNewVersion
      ? `Ready: deploys a new version of ${spec.name}.`
      : `Ready: deploys a new endpoint ${spec.name}.`;
  }
}

// ---------------------------------------------------------------------------
// Try it: an example request

/** A JSON value of a tensor's type to fill an example with. */
function zeroOf(datatype: string): number | boolean | string {
  const type = datatype.toUpperCase();
  if (type === 'BOOL') {
    return false;
  }
  if (type === 'BYTES') {
    return '';
  }
  return type.startsWith('FP') ? 0.0 : 0;
}

/** A shape's dimensions with the free ones (-1, null) as 1. */
function concrete(shape: ReadonlyArray<number>): number[] {
  return shape.map(d => (typeof d === 'number' && d > 0 ? d : 1));
}

/** Nested arrays of `shape` filled with `value`. */
function nested(
  shape: ReadonlyArray<number>,
  value: number | boolean | string
): unknown {
  if (shape.length === 0) {
    return value;
  }
  const [first, ...rest] = shape;
  return Array.from({ length: first }, () => nested(rest, value));
}

/** Elements beyond which an example is a template to edit, not the model's full shape. */
export const MAX_EXAMPLE_ELEMENTS = 4096;

/**
 * Whether an input's shape is the service's "not recorded": a format that keeps no
 * shapes (TorchScript, MXNet) has its inputs shown as `[-1]` in the V2 metadata. An
 * example of one number built from that is refused by the model; the template to
 * edit is the better start.
 */
function unrecorded(input: { shape: ReadonlyArray<number> }): boolean {
  return input.shape.length === 1 && !(input.shape[0] > 0);
}

/**
 * The "try it" box's first request: from the model's V2 inputs when known (every
 * input, free dimensions as 1, filled with zeros of its type), else a one-row
 * template to edit. Shown compact per input, as a user would type it.
 */
export function exampleRequest(
  protocol: PredictProtocol,
  metadata: IModelMetadata | null
): string {
  const inputs = (metadata?.inputs ?? []).filter(
    i => i && typeof i.name === 'string' && Array.isArray(i.shape)
  );
  const fits = inputs.every(
    i => concrete(i.shape).reduce((a, b) => a * b, 1) <= MAX_EXAMPLE_ELEMENTS
  );
  if (inputs.length === 0 || !fits || inputs.some(unrecorded)) {
    return protocol === 'v1'
      ? '{\n  "instances": [[0.0, 0.0, 0.0, 0.0]]\n}'
      : `{\n  "inputs": [\n    ${JSON.stringify({
          name: inputs[0]?.name ?? 'input-0',
          shape: [1, 4],
          datatype: inputs[0]?.datatype ?? 'FP32',
          data: [0.0, 0.0, 0.0, 0.0]
        })}\n  ]\n}`;
  }
  if (protocol === 'v2') {
    const lines = inputs.map(input => {
      const shape = concrete(input.shape);
      const count = shape.reduce((a, b) => a * b, 1);
      return `    ${JSON.stringify({
        name: input.name,
        shape,
        datatype: input.datatype,
        data: Array.from({ length: count }, () => zeroOf(input.datatype))
      })}`;
    });
    return `{\n  "inputs": [\n${lines.join(',\n')}\n  ]\n}`;
  }
  // TF Serving's row format: one instance, the batch dimension dropped.
  const row = (input: (typeof inputs)[number]) =>
    nested(concrete(input.shape).slice(1), zeroOf(input.datatype));
  let instance: unknown = row(inputs[0]);
  if (inputs.length > 1) {
    const named: IJSONObject = {};
    for (const input of inputs) {
      named[input.name] = row(input);
    }
    instance = named;
  }
  return `{\n  "instances": [${JSON.stringify(instance)}]\n}`;
}

/**
 * The box's text as a request body: a JSON object, or throws saying what is wrong.
 */
export function parseRequest(text: string): IJSONObject {
  if (!text.trim()) {
    throw new Error(
      'Write the request first: a JSON object, e.g. {"instances": [...]} or {"inputs": [...]}'
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`The request is not JSON: ${errorText(error)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(
      'The request must be a JSON object, e.g. {"instances": [...]} or {"inputs": [...]}'
    );
  }
  return value as IJSONObject;
}

/** Whether a JSON value holds no object (numbers, strings, arrays of them). */
function isFlat(value: unknown): boolean {
  if (Array.isArray(value)) {
    return value.every(isFlat);
  }
  return typeof value !== 'object' || value === null;
}

/**
 * An answer as readable JSON: objects indented, tensors (arrays of numbers, however
 * nested) each on one line, as a V2 `data` or a TF Serving `predictions` reads best.
 */
export function formatAnswer(value: unknown, indent = ''): string {
  if (isFlat(value)) {
    return JSON.stringify(value) ?? String(value);
  }
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    const items = value.map(v => `${inner}${formatAnswer(v, inner)}`);
    return `[\n${items.join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(value as IJSONObject).map(
    ([key, v]) => `${inner}${JSON.stringify(key)}: ${formatAnswer(v, inner)}`
  );
  return entries.length ? `{\n${entries.join(',\n')}\n${indent}}` : '{}';
}
