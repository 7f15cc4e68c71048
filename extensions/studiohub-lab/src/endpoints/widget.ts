import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import { Time } from '@jupyterlab/coreutils';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { makeButton } from '../components/button';
import { errorText } from '../components/errors';
import { showLogText } from '../components/logView';
import {
  IEndpoint,
  IEndpointMetrics,
  IEndpointsModel,
  IEndpointToken,
  IModelMetadata,
  IServingStats,
  PredictProtocol
} from '../tokens';
import { LogFollower } from '../training/model';
import {
  ERRORS_MEANING,
  canaryVersion,
  canSplitTraffic,
  endpointStats,
  exampleRequest,
  formatAnswer,
  formatMs,
  liveVersion,
  liveVersions,
  parseRequest,
  rollbackPlan
} from './model';

/**
 * One endpoint in a main-area tab: its versions with their replicas, traffic and
 * numbers; the canary share with Apply, Rollback and Delete; each replica's log; the
 * endpoint's tokens; and a Try it box that sends a JSON request and shows the answer
 * or the endpoint's refusal. Reads the endpoint every few seconds while shown.
 */
export class EndpointView extends Widget {
  constructor(options: EndpointView.IOptions) {
    super();
    this.endpointName = options.name;
    this._model = options.model;
    this._actions = options.actions;
    this.addClass('jp-StudioHub-EndpointView');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', `Endpoint ${this.endpointName}`);
    this.title.label = this.endpointName;

    this._heading = document.createElement('h2');
    this._heading.textContent = this.endpointName;
    this._status = document.createElement('p');
    this._status.className = 'jp-StudioHub-EndpointView-status';
    this._status.setAttribute('role', 'status');
    this._status.setAttribute('aria-label', 'Endpoint status');
    this._url = document.createElement('p');
    this._url.className = 'jp-StudioHub-EndpointView-url';
    this._error = document.createElement('div');
    this._error.className = 'jp-StudioHub-EndpointView-error';
    this._error.setAttribute('role', 'alert');

    this.node.append(
      this._heading,
      this._status,
      this._url,
      this._error,
      this._makeActions(),
      this._section('Versions', (this._versions = this._makeVersions())),
      this._section('Try it', this._makeTryIt()),
      this._section('Logs', this._makeLogs()),
      this._section('Tokens', this._makeTokens())
    );

    this._poll = new Poll({
      factory: () => this._tick(),
      frequency: { interval: options.interval ?? 2000, backoff: true },
      standby: 'when-hidden',
      name: `studiohub:endpoint-${this.endpointName}`
    });
  }

  readonly endpointName: string;

  get endpoint(): IEndpoint | null {
    return this._endpoint;
  }

  /** Our own name for screen readers (MainAreaWidget names its content otherwise). */
  protected onAfterAttach(): void {
    this.node.setAttribute('aria-label', `Endpoint ${this.endpointName}`);
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

  // -------------------------------------------------------------------------
  // Reading

  private async _tick(): Promise<void> {
    try {
      const [endpoint, metrics] = await Promise.all([
        this._model.get(this.endpointName),
        this._model.metrics(this.endpointName).catch(() => null)
      ]);
      this._endpoint = endpoint;
      if (metrics) {
        this._metrics = metrics;
      }
      this._renderEndpoint(endpoint);
      this._renderVersions(endpoint, this._metrics);
      this._follow(false);
      if (this._tokensList === null) {
        await this._loadTokens();
      }
      await this._loadMetadata(endpoint);
      await this._follower?.poll().catch(() => '');
      this._error.textContent = '';
    } catch (error) {
      this._error.textContent = errorText(error);
    }
  }

  private _renderEndpoint(endpoint: IEndpoint): void {
    this.title.label = `${endpoint.name} (${endpoint.status})`;
    this.title.caption = `Endpoint ${endpoint.name}: ${endpoint.status}`;
    this._status.dataset.status = endpoint.status;
    this._status.textContent = [
      endpoint.status,
      endpointStats(endpoint, this._metrics ?? undefined)
    ]
      .filter(Boolean)
      .join(' · ');
    const url = new URL(endpoint.url, window.location.href).href;
    this._url.replaceChildren(
      'Reached at ',
      Object.assign(document.createElement('code'), { textContent: url }),
      ` · owner ${endpoint.user} · domain ${endpoint.domain}`
    );
    const live = liveVersions(endpoint);
    // The share and Rollback only when they can do something (the service would
    // refuse a share with one version serving, and a rollback with none before it).
    const split = canSplitTraffic(endpoint);
    const canary = canaryVersion(endpoint);
    this._canary.hidden = !split;
    this._apply.hidden = !split;
    this._canaryWhich.textContent = `Share of version ${canary}`;
    if (split && !this._canaryTouched) {
      const version = endpoint.versions.find(v => v.version === canary);
      this._setCanary(version?.traffic ?? 0);
    }
    const plan = rollbackPlan(endpoint);
    this._rollback.hidden = plan === null;
    this._rollback.title = plan ?? '';
    this._single.hidden =
      split || plan !== null || liveVersion(endpoint) === null;
    // The version picker of Try it: the traffic split, or one version.
    const values = ['', ...live.map(v => String(v.version))];
    const current = Array.from(this._tryVersion.options).map(o => o.value);
    if (values.join() !== current.join()) {
      const chosen = this._tryVersion.value;
      this._tryVersion.replaceChildren(
        new Option('as routed (traffic split)', ''),
        ...live.map(v => new Option(`version ${v.version}`, String(v.version)))
      );
      this._tryVersion.value = values.includes(chosen) ? chosen : '';
    }
  }

  private _renderVersions(
    endpoint: IEndpoint,
    metrics: IEndpointMetrics | null
  ): void {
    const rows: HTMLTableRowElement[] = [];
    const versions = [...endpoint.versions].sort(
      (a, b) => b.version - a.version
    );
    for (const version of versions) {
      const stats = metrics?.versions[String(version.version)];
      const row = document.createElement('tr');
      row.className = `jp-StudioHub-EndpointView-version jp-mod-${version.status}`;
      row.setAttribute('aria-label', `Version ${version.version}`);
      row.append(
        cell(`v${version.version}`),
        cell(version.status),
        cell(`${version.traffic}%`),
        cell(`${version.format} · ${version.image} · ${version.size}`),
        cell(version.source),
        ...statCells(stats)
      );
      rows.push(row);
      for (const replica of version.replicas) {
        const r = document.createElement('tr');
        r.className = `jp-StudioHub-EndpointView-replica jp-mod-${replica.state}`;
        r.setAttribute(
          'aria-label',
          `Version ${version.version} ${replica.name}`
        );
        const restarts = replica.restarts
          ? ` · ${replica.restarts} restart${replica.restarts > 1 ? 's' : ''}`
          : '';
        r.append(
          cell(`↳ ${replica.name}`),
          cell(`${replica.state}${restarts}`),
          cell(''),
          cell(replica.reason, 2),
          ...statCells(stats?.replicas[replica.name])
        );
        rows.push(r);
      }
    }
    this._versions.tBodies[0].replaceChildren(...rows);
  }

  // -------------------------------------------------------------------------
  // Actions: canary, rollback, delete

  private _makeActions(): HTMLElement {
    const actions = document.createElement('div');
    actions.className = 'jp-StudioHub-EndpointView-actions';
    this._canaryWhich = document.createElement('span');
    this._canarySlider = document.createElement('input');
    this._canarySlider.type = 'range';
    this._canarySlider.min = '0';
    this._canarySlider.max = '100';
    this._canarySlider.step = '1';
    this._canarySlider.setAttribute('aria-label', 'Canary share (slider)');
    this._canaryField = document.createElement('input');
    this._canaryField.type = 'number';
    this._canaryField.min = '0';
    this._canaryField.max = '100';
    this._canaryField.className = 'jp-mod-styled';
    this._canaryField.setAttribute('aria-label', 'Canary share in percent');
    this._canarySlider.addEventListener('input', () => {
      this._canaryTouched = true;
      this._canaryField.value = this._canarySlider.value;
    });
    this._canaryField.addEventListener('input', () => {
      this._canaryTouched = true;
      this._canarySlider.value = this._canaryField.value;
    });
    this._canary = document.createElement('label');
    this._canary.className = 'jp-StudioHub-EndpointView-canary';
    this._canary.append(
      this._canaryWhich,
      this._canarySlider,
      this._canaryField,
      '%'
    );
    this._apply = makeButton({
      variant: 'accept',
      text: 'Apply',
      label: 'Apply the canary share',
      title:
        'Give the newest version this share of the requests (100 promotes it)',
      onClick: () => this._applyCanary()
    });
    this._rollback = makeButton({
      variant: 'reject',
      text: 'Rollback',
      label: 'Roll back to the previous version',
      onClick: () =>
        this._actions.rollback(this.endpointName, this._rollback.title)
    });
    // Shown until two versions serve: how a split and a rollback come about.
    this._single = document.createElement('span');
    this._single.className = 'jp-StudioHub-EndpointView-note';
    this._single.textContent =
      'One version: deploy another to this name to split the traffic or roll back.';
    this._canary.hidden = true;
    this._apply.hidden = true;
    this._rollback.hidden = true;
    this._single.hidden = true;
    actions.append(
      this._canary,
      this._apply,
      this._rollback,
      this._single,
      makeButton({
        variant: 'warn',
        text: 'Delete',
        label: 'Delete this endpoint',
        title: 'Stop every version of this endpoint and forget it',
        onClick: () => this._actions.delete(this.endpointName)
      })
    );
    return actions;
  }

  private _setCanary(value: number): void {
    this._canarySlider.value = String(value);
    this._canaryField.value = String(value);
  }

  private async _applyCanary(): Promise<void> {
    const value = Number(this._canaryField.value);
    if (!Number.isFinite(value) || value < 0 || value > 100) {
      this._error.textContent = 'The canary share is a number from 0 to 100.';
      return;
    }
    this._canaryTouched = false;
    await this._actions.traffic(this.endpointName, value);
    await this.refresh();
  }

  // -------------------------------------------------------------------------
  // Versions table

  private _makeVersions(): HTMLTableElement {
    const table = document.createElement('table');
    table.className = 'jp-StudioHub-EndpointView-versions';
    table.setAttribute('aria-label', 'Versions and replicas');
    const head = table.createTHead().insertRow();
    for (const [title, tooltip] of [
      ['Version', ''],
      ['Status', ''],
      ['Traffic', ''],
      ['Model', ''],
      ['Source', ''],
      ['req/s', ''],
      ['p50', ''],
      ['p99', ''],
      ['5xx errors', ERRORS_MEANING]
    ]) {
      const th = document.createElement('th');
      th.textContent = title;
      if (tooltip) {
        th.title = tooltip;
      }
      head.append(th);
    }
    table.createTBody();
    return table;
  }

  // -------------------------------------------------------------------------
  // Try it

  private _makeTryIt(): HTMLElement {
    const box = document.createElement('div');
    box.className = 'jp-StudioHub-EndpointView-try';
    const bar = document.createElement('div');
    bar.className = 'jp-StudioHub-EndpointView-tryBar';
    this._protocol = document.createElement('select');
    this._protocol.className = 'jp-mod-styled';
    this._protocol.setAttribute('aria-label', 'Protocol');
    this._protocol.append(
      new Option('v1: TensorFlow Serving REST (:predict)', 'v1'),
      new Option('v2: Open Inference Protocol (/infer)', 'v2')
    );
    this._protocol.value = 'v2';
    this._protocol.addEventListener('change', () => {
      if (!this._requestTouched) {
        this._prefill();
      }
    });
    this._tryVersion = document.createElement('select');
    this._tryVersion.className = 'jp-mod-styled';
    this._tryVersion.setAttribute('aria-label', 'Version to ask');
    this._tryVersion.append(new Option('as routed (traffic split)', ''));
    this._send = makeButton({
      variant: 'accept',
      text: 'Send',
      label: 'Send the request',
      onClick: () => this.send()
    });
    bar.append(this._protocol, this._tryVersion, this._send);
    this._request = document.createElement('textarea');
    this._request.className = 'jp-StudioHub-EndpointView-request';
    this._request.rows = 8;
    this._request.spellcheck = false;
    this._request.setAttribute('aria-label', 'Request (JSON)');
    this._request.addEventListener('input', () => {
      this._requestTouched = true;
    });
    this._request.addEventListener('keydown', event => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        void this.send();
      }
    });
    this._answer = document.createElement('pre');
    this._answer.className = 'jp-StudioHub-EndpointView-answer';
    this._answer.setAttribute('aria-label', 'Answer');
    this._answer.setAttribute('aria-live', 'polite');
    this._prefill();
    box.append(bar, this._request, this._answer);
    return box;
  }

  /**
   * The example request for the chosen protocol, from the model's inputs once it
   * serves (a guessed template before would name inputs the model may not have).
   */
  private _prefill(): void {
    this._request.placeholder = this._metadataAsked
      ? ''
      : 'An example request appears here once the endpoint serves (from its model’s inputs); or write one.';
    this._request.value = this._metadataAsked
      ? exampleRequest(this._protocol.value as PredictProtocol, this._metadata)
      : '';
  }

  private async _loadMetadata(endpoint: IEndpoint): Promise<void> {
    if (
      this._metadataAsked ||
      !endpoint.versions.some(v => v.status === 'serving')
    ) {
      return;
    }
    this._metadataAsked = true;
    try {
      this._metadata = await this._model.metadata(this.endpointName);
    } catch {
      this._metadata = null; // the template stays
    }
    if (!this._requestTouched) {
      this._prefill();
    }
  }

  /** Send the box's request; show the answer, or the refusal as worded. */
  async send(): Promise<void> {
    this._answer.classList.remove('jp-mod-error');
    let body;
    try {
      body = parseRequest(this._request.value);
    } catch (error) {
      this._showAnswer(errorText(error), true);
      return;
    }
    const version = this._tryVersion.value
      ? Number(this._tryVersion.value)
      : undefined;
    this._send.disabled = true;
    this._answer.textContent = 'Sending…';
    const started = performance.now();
    try {
      const answer = await this._model.predict(
        this.endpointName,
        this._protocol.value as PredictProtocol,
        body,
        version
      );
      const ms = performance.now() - started;
      this._showAnswer(
        `${formatAnswer(answer)}\n\n(${Math.round(ms)} ms)`,
        false
      );
    } catch (error) {
      this._showAnswer(errorText(error), true);
    } finally {
      this._send.disabled = false;
    }
  }

  private _showAnswer(text: string, failed: boolean): void {
    this._answer.textContent = text;
    this._answer.classList.toggle('jp-mod-error', failed);
    if (failed) {
      this._answer.setAttribute('role', 'alert');
    } else {
      this._answer.removeAttribute('role');
    }
  }

  // -------------------------------------------------------------------------
  // Logs

  private _makeLogs(): HTMLElement {
    const box = document.createElement('div');
    this._replica = document.createElement('select');
    this._replica.className = 'jp-mod-styled';
    this._replica.setAttribute('aria-label', 'Replica');
    this._replica.addEventListener('change', () => this._follow(true));
    this._log = document.createElement('pre');
    this._log.className = 'jp-StudioHub-EndpointView-log';
    this._log.setAttribute('role', 'log');
    this._log.setAttribute('aria-label', 'Replica log');
    this._log.tabIndex = 0;
    box.append(this._replica, this._log);
    return box;
  }

  /** Follow the chosen replica's log (version and replica from the picker). */
  private _follow(changed: boolean): void {
    const endpoint = this._endpoint;
    if (!endpoint) {
      return;
    }
    const choices: string[] = [];
    for (const v of liveVersions(endpoint)) {
      choices.push(...v.replicas.map(r => `${v.version}/${r.name}`));
    }
    const current = Array.from(this._replica.options).map(o => o.value);
    if (choices.join() !== current.join()) {
      const chosen = this._replica.value;
      this._replica.replaceChildren(
        ...choices.map(c => {
          const [version, replica] = c.split('/');
          return new Option(`version ${version} · ${replica}`, c);
        })
      );
      this._replica.value = choices.includes(chosen)
        ? chosen
        : (choices[0] ?? '');
    }
    const [versionText, replica] = (this._replica.value || '/').split('/');
    const version = Number(versionText);
    if (!replica || !version) {
      return;
    }
    const follower = this._follower;
    if (
      changed ||
      !follower ||
      follower.replica !== replica ||
      follower.attempt !== version
    ) {
      const name = this.endpointName;
      // A log is read like a training job's, by byte offsets; "attempt" is the version.
      this._follower = new LogFollower(
        {
          logs: (_id, replicaName, v, offset) =>
            this._model.logs(name, v, replicaName, offset)
        },
        name,
        replica,
        version
      );
      this._follower.changed.connect(this._renderLog, this);
      this._log.textContent = '';
      if (changed) {
        void this._follower.poll().catch(error => {
          this._log.textContent = errorText(error);
        });
      }
    }
  }

  private _renderLog(follower: LogFollower, added: string): void {
    if (follower === this._follower) {
      showLogText(this._log, follower.text, added);
    }
  }

  // -------------------------------------------------------------------------
  // Tokens

  private _makeTokens(): HTMLElement {
    const box = document.createElement('div');
    const intro = document.createElement('p');
    intro.className = 'jp-StudioHub-EndpointView-note';
    intro.textContent =
      'Programs outside the hub call this endpoint with Authorization: Bearer <token>. A token reaches this endpoint only, and stops working when revoked.';
    this._newToken = document.createElement('div');
    this._newToken.className = 'jp-StudioHub-EndpointView-newToken';
    this._newToken.setAttribute('role', 'status');
    this._newToken.setAttribute('aria-label', 'New endpoint token');
    this._newToken.hidden = true;
    this._tokens = document.createElement('ul');
    this._tokens.setAttribute('aria-label', 'Endpoint tokens');
    this._tokenNote = document.createElement('input');
    this._tokenNote.className = 'jp-mod-styled';
    this._tokenNote.maxLength = 100;
    this._tokenNote.placeholder = 'Note: what will use it (optional)';
    this._tokenNote.setAttribute('aria-label', 'New token note');
    this._tokenNote.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        event.preventDefault();
        void this._createToken();
      }
    });
    const create = document.createElement('div');
    create.className = 'jp-StudioHub-EndpointView-tokenCreate';
    create.append(
      this._tokenNote,
      makeButton({
        variant: 'reject',
        text: 'Create token',
        label: 'Create an endpoint token',
        onClick: () => this._createToken()
      })
    );
    box.append(intro, create, this._newToken, this._tokens);
    return box;
  }

  private async _loadTokens(): Promise<void> {
    try {
      this._tokensList = await this._model.tokens(this.endpointName);
      this._renderTokens();
    } catch (error) {
      this._tokensList = [];
      this._tokens.replaceChildren(
        Object.assign(document.createElement('li'), {
          textContent: errorText(error)
        })
      );
    }
  }

  private async _createToken(): Promise<void> {
    let token: IEndpointToken;
    try {
      token = await this._model.createToken(
        this.endpointName,
        this._tokenNote.value.trim()
      );
    } catch (error) {
      this._error.textContent = errorText(error);
      return;
    }
    this._tokenNote.value = '';
    // The secret is shown this once, with a way to copy it, where the user looks: the
    // Tokens section is at the bottom of the tab, below the fold.
    const secret = document.createElement('code');
    secret.textContent = token.token ?? '';
    secret.setAttribute('aria-label', 'New token');
    const note = document.createElement('p');
    note.textContent = `New token ${token.id}, shown only this once: copy it now.`;
    const copy = makeButton({
      variant: 'accept',
      text: 'Copy',
      label: 'Copy the new token',
      onClick: () => {
        Clipboard.copyToSystem(token.token ?? '');
        copy.textContent = 'Copied';
      }
    });
    const value = document.createElement('div');
    value.className = 'jp-StudioHub-EndpointView-secret';
    value.append(secret, copy);
    this._newToken.replaceChildren(
      note,
      value,
      makeButton({
        text: 'Done',
        label: 'Hide the new token',
        title: 'Hide the token (it cannot be shown again)',
        onClick: () => {
          this._newToken.hidden = true;
          this._newToken.replaceChildren();
        }
      })
    );
    this._newToken.hidden = false;
    this._newToken.scrollIntoView?.({ block: 'center', behavior: 'smooth' });
    copy.focus({ preventScroll: true });
    await this._loadTokens();
  }

  private async _revokeToken(id: string): Promise<void> {
    const answer = await showDialog({
      title: `Revoke token ${id}?`,
      body: 'Programs using it are refused (401) from now on.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Revoke' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await this._model.revokeToken(this.endpointName, id);
    } catch (error) {
      this._error.textContent = errorText(error);
    }
    await this._loadTokens();
  }

  private _renderTokens(): void {
    const tokens = this._tokensList ?? [];
    if (tokens.length === 0) {
      this._tokens.replaceChildren(
        Object.assign(document.createElement('li'), {
          className: 'jp-StudioHub-EndpointView-note',
          textContent: 'No tokens.'
        })
      );
      return;
    }
    this._tokens.replaceChildren(
      ...tokens.map(token => {
        const item = document.createElement('li');
        item.setAttribute('aria-label', `Token ${token.id}`);
        const label = document.createElement('span');
        label.textContent = `${token.id}${created(token.created)}`;
        if (token.note) {
          label.append(
            ' · ',
            Object.assign(document.createElement('em'), {
              textContent: token.note
            })
          );
        }
        item.append(
          label,
          makeButton({
            text: 'Revoke',
            label: `Revoke token ${token.id}`,
            onClick: () => this._revokeToken(token.id)
          })
        );
        return item;
      })
    );
  }

  private _section(title: string, content: HTMLElement): HTMLElement {
    const section = document.createElement('section');
    section.className = 'jp-StudioHub-EndpointView-section';
    const heading = document.createElement('h3');
    heading.textContent = title;
    section.setAttribute('aria-label', title);
    section.append(heading, content);
    return section;
  }

  private _model: IEndpointsModel;
  private _actions: EndpointView.IActions;
  private _poll: Poll;
  private _endpoint: IEndpoint | null = null;
  private _metrics: IEndpointMetrics | null = null;
  private _metadata: IModelMetadata | null = null;
  private _metadataAsked = false;
  private _requestTouched = false;
  private _canaryTouched = false;
  private _follower: LogFollower | null = null;
  private _tokensList: IEndpointToken[] | null = null;
  private _heading: HTMLElement;
  private _status: HTMLElement;
  private _url: HTMLElement;
  private _error: HTMLElement;
  private _versions: HTMLTableElement;
  private _canary!: HTMLLabelElement;
  private _canaryWhich!: HTMLElement;
  private _canarySlider!: HTMLInputElement;
  private _canaryField!: HTMLInputElement;
  private _apply!: HTMLButtonElement;
  private _rollback!: HTMLButtonElement;
  private _single!: HTMLElement;
  private _protocol!: HTMLSelectElement;
  private _tryVersion!: HTMLSelectElement;
  private _send!: HTMLButtonElement;
  private _request!: HTMLTextAreaElement;
  private _answer!: HTMLPreElement;
  private _replica!: HTMLSelectElement;
  private _log!: HTMLPreElement;
  private _newToken!: HTMLElement;
  private _tokens!: HTMLUListElement;
  private _tokenNote!: HTMLInputElement;
}

/** " · created 5 minutes ago", or the service's text when it is not a date. */
function created(when: string | undefined): string {
  if (!when) {
    return '';
  }
  return Number.isFinite(Date.parse(when))
    ? ` · created ${Time.formatHuman(when)}`
    : ` · created ${when}`;
}

function cell(text: string, span = 1): HTMLTableCellElement {
  const td = document.createElement('td');
  td.textContent = text;
  if (span > 1) {
    td.colSpan = span;
  }
  return td;
}

function statCells(
  stats: Partial<IServingStats> | undefined
): HTMLTableCellElement[] {
  if (!stats) {
    return [cell(''), cell(''), cell(''), cell('')];
  }
  const rps = stats.rps;
  return [
    cell(typeof rps === 'number' ? rps.toFixed(rps < 10 ? 1 : 0) : '—'),
    cell(formatMs(stats.p50_ms)),
    cell(formatMs(stats.p99_ms)),
    cell(typeof stats.errors === 'number' ? String(stats.errors) : '—')
  ];
}

export namespace EndpointView {
  /** What the tab's buttons do (the plugin's commands, which confirm and notify). */
  export interface IActions {
    traffic(name: string, canary: number): unknown;
    /** `plan`: what the rollback would do (the button's tooltip), for the confirmation. */
    rollback(name: string, plan?: string): unknown;
    delete(name: string): unknown;
  }

  export interface IOptions {
    name: string;
    model: IEndpointsModel;
    actions: EndpointView.IActions;
    /** Milliseconds between reads while shown. */
    interval?: number;
  }
}
