import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { requestAPI } from '../api';
import { ITensorBoard, ITensorBoardModel } from '../tokens';

/**
 * The user's TensorBoards, refreshed by a poll while JupyterLab is visible.
 */
export class TensorBoardModel implements ITensorBoardModel {
  constructor(options: TensorBoardModel.IOptions = {}) {
    this._request = options.request ?? requestAPI;
    this._poll = new Poll({
      factory: () => this.refresh(),
      frequency: {
        interval: (options.refreshInterval ?? 10) * 1000,
        backoff: true,
        max: 300 * 1000
      },
      standby: 'when-hidden',
      name: 'studiohub:tensorboards'
    });
  }

  get tensorboards(): ReadonlyArray<ITensorBoard> {
    return this._tensorboards;
  }

  get changed(): ISignal<ITensorBoardModel, ReadonlyArray<ITensorBoard>> {
    return this._changed;
  }

  set refreshInterval(seconds: number) {
    void this._poll.schedule({
      interval: seconds * 1000,
      phase: 'reconnected'
    });
  }

  async open(folders: string[]): Promise<ITensorBoard> {
    const board = await this._request<ITensorBoard>('tensorboards', {
      method: 'POST',
      body: JSON.stringify({ folders })
    });
    this._update(board);
    return board;
  }

  async waitReady(id: string): Promise<ITensorBoard> {
    const board = await this._request<ITensorBoard>(
      `tensorboards/${id}?wait=ready`
    );
    this._update(board);
    return board;
  }

  async restart(id: string): Promise<ITensorBoard> {
    const board = await this._request<ITensorBoard>(
      `tensorboards/${id}/restart`,
      { method: 'POST' }
    );
    this._update(board);
    return board;
  }

  async stop(id: string): Promise<ITensorBoard> {
    const board = await this._request<ITensorBoard>(`tensorboards/${id}`, {
      method: 'DELETE'
    });
    this._update(board);
    return board;
  }

  async refresh(): Promise<void> {
    const reply = await this._request<{ tensorboards: ITensorBoard[] }>(
      'tensorboards'
    );
    this._tensorboards = reply.tensorboards;
    this._changed.emit(this._tensorboards);
  }

  dispose(): void {
    this._poll.dispose();
  }

  private _update(board: ITensorBoard): void {
    const others = this._tensorboards.filter(b => b.id !== board.id);
    this._tensorboards = [board, ...others];
    this._changed.emit(this._tensorboards);
  }

  private _changed = new Signal<ITensorBoardModel, ReadonlyArray<ITensorBoard>>(
    this
  );
  private _poll: Poll;
  private _request: typeof requestAPI;
  private _tensorboards: ITensorBoard[] = [];
}

export namespace TensorBoardModel {
  export interface IOptions {
    /**
     * Seconds between two refreshes of the list.
     */
    refreshInterval?: number;
    /**
     * The API call (tests pass a fake).
     */
    request?: typeof requestAPI;
  }
}

/**
 * `3 s`, `4 min`, `2 h 5 min`, `3 d 4 h`.
 */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) {
    return `${s} s`;
  }
  const minutes = Math.floor(s / 60);
  if (minutes < 60) {
    return `${minutes} min`;
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 24) {
    return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
  }
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

/**
 * The tab title for a set of folders: `TensorBoard: mnist` or `TensorBoard: a, b`.
 */
export function boardTitle(folders: ReadonlyArray<string>): string {
  const names = folders.map(f => {
    const parts = f.replace(/\/+$/, '').split('/');
    return parts[parts.length - 1] || f || '~';
  });
  return `TensorBoard: ${names.join(', ')}`;
}

/** The browser-storage key of TensorBoard's own settings (2.x: kept per origin). */
export const TENSORBOARD_SETTINGS_KEY = '_tb_global_settings';

/**
 * Make TensorBoard open with its settings pane closed, unless the user chose otherwise.
 *
 * TensorBoard keeps its user settings in the browser's storage, and its boards here are
 * served from JupyterLab's own origin, so they read what JupyterLab writes. Its time-series
 * dashboard opens the settings pane (a quarter of a Lab tab) until told otherwise by
 * `timeSeriesSettingsPaneOpened`, which it saves itself each time the user toggles the
 * pane: only a missing value is set. Unreadable settings are left as they are.
 */
export function closeSettingsPaneByDefault(storage?: Storage): void {
  let settings: Record<string, unknown> = {};
  try {
    // (Reading window.localStorage itself throws where storage is disabled.)
    const store = storage ?? window.localStorage;
    const saved = store.getItem(TENSORBOARD_SETTINGS_KEY);
    if (saved !== null) {
      const parsed: unknown = JSON.parse(saved);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
        return;
      }
      settings = parsed as Record<string, unknown>;
    }
    if (typeof settings.timeSeriesSettingsPaneOpened === 'boolean') {
      return;
    }
    store.setItem(
      TENSORBOARD_SETTINGS_KEY,
      JSON.stringify({ ...settings, timeSeriesSettingsPaneOpened: false })
    );
  } catch {
    // Storage disabled or full, or not JSON: TensorBoard keeps its own default.
  }
}
