import { PromiseDelegate } from '@lumino/coreutils';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { requestAPI } from '../api';
import {
  IChoice,
  IChoiceVerdict,
  IKernelNotice,
  IKernelOptions,
  IKernelReport,
  INotebookKernel,
  INotebookSession,
  ISwitcher
} from '../tokens';
import { nearestChoice } from './choices';

/** What a second switch of a notebook is told while the first runs. */
export const STILL_SWITCHING =
  'This notebook is still switching: wait until it is done.';

/**
 * The switcher's state for this browser: the hub's options for this user, each open
 * notebook's kernel model, and which kernel deaths were already told. Every call to
 * the server goes through `request` (the one `requestAPI`; tests pass a fake).
 */
export class SwitcherModel implements ISwitcher {
  constructor(options: SwitcherModel.IOptions = {}) {
    this._request = options.request ?? requestAPI;
    this._timing = { ...DEFAULT_TIMING, ...options.timing };
  }

  get options(): IKernelOptions | null {
    return this._options;
  }

  async loadOptions(replacing?: string): Promise<IKernelOptions> {
    const query = replacing
      ? `?replacing=${encodeURIComponent(replacing)}`
      : '';
    this._options = await this._request<IKernelOptions>(
      `kernel-options${query}`
    );
    return this._options;
  }

  /**
   * The options already known, else fetched now; null when the hub cannot answer.
   */
  async knownOptions(): Promise<IKernelOptions | null> {
    return this._options ?? (await this.loadOptions().catch(() => null));
  }

  track(notebook: object, session: INotebookSession): INotebookKernel {
    let kernel = this._notebooks.get(notebook);
    if (!kernel) {
      kernel = new NotebookKernelModel(this, session, this._timing);
      this._notebooks.set(notebook, kernel);
    }
    return kernel;
  }

  find(notebook: object): INotebookKernel | undefined {
    return this._notebooks.get(notebook);
  }

  restartServer(choice: IChoice): Promise<IChoice & { pending_url: string }> {
    return this._request<IChoice & { pending_url: string }>('server-restart', {
      method: 'POST',
      body: JSON.stringify(choice)
    });
  }

  /**
   * Record a notebook's next image and size on the server; its answer names the kernel
   * to restart into. The hub decides whether it can run when that kernel starts.
   */
  recordChoice(
    path: string,
    choice: IChoice,
    replaces: string | null
  ): Promise<IChoiceVerdict> {
    return this._request<IChoiceVerdict>('kernel-choices', {
      method: 'POST',
      body: JSON.stringify({ path, ...choice, replaces: replaces ?? '' })
    });
  }

  kernelReport(kernelId: string): Promise<IKernelReport> {
    return this._request<IKernelReport>(`kernels/${kernelId}`);
  }

  /**
   * Whether this death of `kernelId` is news: two notebooks on one kernel, or a status
   * seen twice, tell it once.
   */
  firstSight(kernelId: string, exitTime: string): boolean {
    if (this._exits.get(kernelId) === exitTime) {
      return false;
    }
    this._exits.set(kernelId, exitTime);
    return true;
  }

  private _exits = new Map<string, string>();
  private _notebooks = new WeakMap<object, NotebookKernelModel>();
  private _options: IKernelOptions | null = null;
  private _request: typeof requestAPI;
  private _timing: SwitcherModel.ITiming;
}

export namespace SwitcherModel {
  export interface ITiming {
    /** Milliseconds between two reports of a kernel's usage (backing off when idle). */
    usageInterval: number;
    /** After a kernel died: how often, and how many times, to ask the server why. */
    exitInterval: number;
    exitAttempts: number;
  }

  export interface IOptions {
    /** The API call (tests pass a fake). */
    request?: typeof requestAPI;
    timing?: Partial<ITiming>;
  }
}

const DEFAULT_TIMING: SwitcherModel.ITiming = {
  usageInterval: 2000,
  // The server records why a kernel died before it is back: give it a few seconds.
  exitInterval: 500,
  exitAttempts: 10
};

/**
 * One notebook's kernel: its report (polled while JupyterLab is visible), the switch
 * under way, and the notices about it (a death, a saved choice refused, an image the
 * user may not use). The toolbar item renders it; the plugin shows its notices.
 */
export class NotebookKernelModel implements INotebookKernel {
  constructor(
    private readonly _switcher: SwitcherModel,
    readonly session: INotebookSession,
    private readonly _timing: SwitcherModel.ITiming
  ) {
    this._poll = new Poll({
      factory: () => this.refresh(),
      frequency: {
        interval: _timing.usageInterval,
        backoff: true,
        max: 30000
      },
      standby: 'when-hidden',
      name: 'studiohub:kernel-usage'
    });
  }

  get kernelId(): string | null {
    return this._kernelId;
  }
  set kernelId(id: string | null) {
    if (id === this._kernelId) {
      return;
    }
    this._kernelId = id;
    this._report = null;
    this._changed.emit();
    if (id) {
      void this._poll.refresh();
    }
  }

  get report(): IKernelReport | null {
    return this._report;
  }

  get pending(): string | null {
    return this._pending;
  }

  get switching(): boolean {
    return this._switching;
  }

  /**
   * While a switch is under way: a promise that resolves once the new kernel is this
   * notebook's (cells run then go to it) and rejects with the reason when the switch
   * failed; null when no switch runs. Cells the user runs meanwhile wait on it, so
   * none reaches the old kernel or is dropped with it.
   */
  get switched(): Promise<void> | null {
    return this._switched?.promise ?? null;
  }

  get changed(): ISignal<INotebookKernel, void> {
    return this._changed;
  }

  get notice(): ISignal<INotebookKernel, IKernelNotice> {
    return this._notice;
  }

  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  shownChoice(options: IKernelOptions): Partial<IChoice> {
    return (
      this.session.savedChoice() ?? {
        image: this._report?.choice.image ?? options.server.image,
        size: this._report?.choice.size ?? options.server.size
      }
    );
  }

  async refresh(): Promise<void> {
    const id = this._kernelId;
    if (!id || this.isDisposed) {
      return;
    }
    let report: IKernelReport;
    try {
      report = await this._switcher.kernelReport(id);
    } catch {
      return; // starting or gone: the next tick or kernel change will tell
    }
    if (id !== this._kernelId || this.isDisposed) {
      return; // an answer about a kernel this notebook no longer runs
    }
    this._report = report;
    this._pending = null;
    this._changed.emit();
  }

  async switchTo(choice: IChoice): Promise<string> {
    if (this._switching) {
      throw new Error(STILL_SWITCHING);
    }
    const switched = new PromiseDelegate<void>();
    // Nobody may be waiting: a refusal is then no unhandled rejection.
    switched.promise.catch(() => undefined);
    this._switched = switched;
    this._setSwitching(true);
    try {
      const old = await this.session.liveKernel();
      const verdict = await this._switcher.recordChoice(
        this.session.path,
        choice,
        old
      );
      const label = `${verdict.image_label} · ${verdict.size_label}`;
      this._pending = `Switching to ${label}…`;
      this._changed.emit();
      await this.session.restart(verdict.kernel_name, old);
      this.session.saveChoice({ image: verdict.image, size: verdict.size });
      this._switched = null;
      switched.resolve();
      return label;
    } catch (error) {
      // Refused: the old kernel runs on; show where it runs again.
      this._pending = null;
      void this.refresh();
      this._switched = null;
      switched.reject(error);
      throw error;
    } finally {
      this._setSwitching(false);
    }
  }

  statusChanged(kernelId: string, status: string): void {
    if (status === 'autorestarting' || status === 'dead') {
      void this._explainExit(kernelId);
    }
    if (status === 'idle' && this._fallbackChecked !== kernelId) {
      this._fallbackChecked = kernelId;
      void this._explainFallback(kernelId);
    }
  }

  async checkSavedImage(): Promise<void> {
    const saved = this.session.savedChoice();
    if (!saved) {
      return;
    }
    const options = await this._switcher.knownOptions();
    if (!options || options.images.some(i => i.id === saved.image)) {
      return;
    }
    this._emitNotice({
      kind: 'foreign-image',
      saved,
      nearest: nearestChoice(options, saved)
    });
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    Signal.clearData(this);
  }

  private async _explainExit(kernelId: string): Promise<void> {
    for (let attempt = 0; attempt < this._timing.exitAttempts; attempt++) {
      await new Promise(resolve =>
        setTimeout(resolve, this._timing.exitInterval)
      );
      const report = await this._switcher
        .kernelReport(kernelId)
        .catch(() => null);
      const exit = report?.last_exit;
      if (exit && this._switcher.firstSight(kernelId, exit.time)) {
        this._emitNotice({ kind: 'exit', exit });
        return;
      }
    }
  }

  private async _explainFallback(kernelId: string): Promise<void> {
    const report = await this._switcher
      .kernelReport(kernelId)
      .catch(() => null);
    const fallback = report?.fallback;
    if (!fallback) {
      return;
    }
    const options = await this._switcher.knownOptions();
    const nearest = options
      ? nearestChoice(options, { image: fallback.image, size: fallback.size })
      : null;
    this._emitNotice({ kind: 'fallback', fallback, nearest });
  }

  private _emitNotice(notice: IKernelNotice): void {
    if (!this.isDisposed) {
      this._notice.emit(notice);
    }
  }

  private _setSwitching(switching: boolean): void {
    this._switching = switching;
    this._changed.emit();
  }

  private _changed = new Signal<INotebookKernel, void>(this);
  private _fallbackChecked: string | null = null;
  private _kernelId: string | null = null;
  private _notice = new Signal<INotebookKernel, IKernelNotice>(this);
  private _pending: string | null = null;
  private _poll: Poll;
  private _report: IKernelReport | null = null;
  private _switched: PromiseDelegate<void> | null = null;
  private _switching = false;
}
