import { Token } from '@lumino/coreutils';
import { ISignal } from '@lumino/signaling';

/**
 * The sharing commands (`studiohub:<verb>-<noun>`). They live beside the sharing
 * plugins rather than in `../tokens.ts` while the switcher is being reworked there.
 */
export enum SharingCommandIDs {
  shareNotebook = 'studiohub:share-notebook',
  showShared = 'studiohub:show-shared',
  openShare = 'studiohub:open-share',
  copyShareLink = 'studiohub:copy-share-link',
  copyShare = 'studiohub:copy-share',
  revokeShare = 'studiohub:revoke-share'
}

export const SHARING_PLUGIN_IDS = {
  sharing: '@studiohub/lab:sharing',
  sharedPanel: '@studiohub/lab:shared-panel'
} as const;

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
