import { ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { requestAPI } from '../api';
import { errorText } from './logic';
import { IDomain, IShare, IShareRequest, ISharingModel } from '../tokens';

/**
 * The sharing routes of the server extension (`studiohub/api/v1/sharing/…`), which
 * forward to the hub's sharing service with this server's token.
 */
const ROOT = 'sharing';

/**
 * Notebook sharing for this user: the lists of the Shared sidebar and the actions on
 * them. Owns the state; the dialog and the panel only render it.
 */
export class SharingModel implements ISharingModel {
  constructor(
    options: {
      settings?: ServerConnection.ISettings;
      storage?: Pick<Storage, 'getItem' | 'setItem'> | null;
    } = {}
  ) {
    this._settings = options.settings ?? ServerConnection.makeSettings();
    this._storage =
      options.storage === undefined ? safeLocalStorage() : options.storage;
    // One hub origin serves every user's Lab: keep each server's paths apart.
    this._storageKey = `studiohub-sharing:paths:${this._settings.baseUrl}`;
  }

  get mine(): ReadonlyArray<IShare> {
    return this._mine;
  }
  get withMyDomains(): ReadonlyArray<IShare> {
    return this._withMyDomains;
  }
  get recent(): ReadonlyArray<IShare> {
    return this._recent;
  }
  get query(): string {
    return this._query;
  }
  get error(): string | null {
    return this._error;
  }
  get changed(): ISignal<ISharingModel, void> {
    return this._changed;
  }

  async refresh(): Promise<void> {
    const settle = <T>(promise: Promise<T>) =>
      promise.then(
        value => ({ value, error: undefined }),
        (error: unknown) => ({ value: undefined, error: error ?? 'failed' })
      );
    const [mine, domains, recent] = await Promise.all([
      settle(this._get<{ shares: IShare[] }>('shares?filter=mine')),
      settle(this._get<{ shares: IShare[] }>(this._domainsQuery())),
      settle(this._get<{ shares: IShare[] }>('recent'))
    ]);
    this._mine = mine.value?.shares ?? this._mine;
    this._withMyDomains = domains.value?.shares ?? this._withMyDomains;
    this._recent = recent.value?.shares ?? this._recent;
    const failed = [mine, domains, recent].find(r => r.error !== undefined);
    this._error = failed ? errorText(failed.error) : null;
    this._changed.emit();
    if (failed) {
      throw failed.error;
    }
  }

  async search(query: string): Promise<void> {
    this._query = query;
    try {
      const answer = await this._get<{ shares: IShare[] }>(
        this._domainsQuery()
      );
      if (query === this._query) {
        this._withMyDomains = answer.shares;
        this._error = null;
      }
    } catch (error) {
      this._error = errorText(error);
      throw error;
    } finally {
      this._changed.emit();
    }
  }

  async domains(): Promise<IDomain[]> {
    return (await this._get<{ domains: IDomain[] }>('domains')).domains;
  }

  find(id: string): IShare | undefined {
    return [...this._mine, ...this._withMyDomains, ...this._recent].find(
      share => share.id === id
    );
  }

  async share(request: IShareRequest): Promise<IShare> {
    const options = {
      path: request.path,
      include_outputs: request.includeOutputs,
      ...(request.note.trim() ? { note: request.note.trim() } : {})
    };
    let share: IShare;
    if (request.shareId) {
      const id = encodeURIComponent(request.shareId);
      await this._call(`shares/${id}/versions`, 'POST', options);
      share = await this._get<IShare>(`shares/${id}`);
    } else {
      share = await this._call<IShare>('shares', 'POST', {
        ...options,
        domain: request.domain
      });
    }
    this._rememberPath(share.id, request.path);
    void this.refresh().catch(() => undefined);
    return share;
  }

  async revoke(id: string): Promise<void> {
    await this._call(`shares/${encodeURIComponent(id)}`, 'DELETE');
    void this.refresh().catch(() => undefined);
  }

  async copy(id: string): Promise<string> {
    const answer = await this._call<{ path: string; url: string }>(
      `shares/${encodeURIComponent(id)}/copy`,
      'POST',
      {}
    );
    return answer.path;
  }

  pathOf(id: string): string | null {
    return this._paths()[id] ?? null;
  }

  private _domainsQuery(): string {
    const q = this._query.trim();
    return q
      ? `shares?filter=domains&q=${encodeURIComponent(q)}`
      : 'shares?filter=domains';
  }

  private _get<T>(endPoint: string): Promise<T> {
    return requestAPI<T>(`${ROOT}/${endPoint}`, {}, this._settings);
  }

  private _call<T>(endPoint: string, method: string, body?: unknown) {
    return requestAPI<T>(
      `${ROOT}/${endPoint}`,
      {
        method,
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      },
      this._settings
    );
  }

  private _paths(): Record<string, string> {
    try {
      return JSON.parse(this._storage?.getItem(this._storageKey) ?? '{}') ?? {};
    } catch {
      return {};
    }
  }

  private _rememberPath(id: string, path: string): void {
    try {
      this._storage?.setItem(
        this._storageKey,
        JSON.stringify({ ...this._paths(), [id]: path })
      );
    } catch {
      // storage full or refused: "New version…" asks for the notebook to be open instead
    }
  }

  private _settings: ServerConnection.ISettings;
  private _storage: Pick<Storage, 'getItem' | 'setItem'> | null;
  private _storageKey: string;
  private _mine: IShare[] = [];
  private _withMyDomains: IShare[] = [];
  private _recent: IShare[] = [];
  private _query = '';
  private _error: string | null = null;
  private _changed = new Signal<ISharingModel, void>(this);
}

function safeLocalStorage(): Storage | null {
  try {
    return typeof window !== 'undefined' ? window.localStorage : null;
  } catch {
    return null;
  }
}
