import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import { makeButton } from '../components/button';
import { shareLink, shareSummary } from './logic';
import { IShare, ISharingModel, CommandIDs } from '../tokens';

type ListKind = 'mine' | 'domains' | 'recent';

/**
 * The Shared sidebar: shared by me (views, new version, revoke), shared with my
 * domains (search by title or author), recently opened. A title opens the read-only
 * preview in a new browser tab. Renders the model; every action is a command.
 */
export class SharedPanel extends Widget {
  constructor(options: SharedPanel.IOptions) {
    super();
    this._model = options.model;
    this._commands = options.commands;
    this._origin = options.origin;
    this.id = 'studiohub-shared';
    this.addClass('jp-StudioHub-SharedPanel');
    this.title.caption = 'Shared notebooks';
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'Shared notebooks');

    const header = document.createElement('header');
    const heading = document.createElement('h2');
    heading.textContent = 'Shared';
    const refresh = makeButton({
      text: 'Refresh',
      label: 'Refresh shared notebooks',
      onClick: () => this._model.refresh().catch(() => undefined)
    });
    header.append(heading, refresh);

    this._error = document.createElement('div');
    this._error.className = 'jp-StudioHub-SharedPanel-error';
    this._error.setAttribute('role', 'alert');

    this._search = document.createElement('input');
    this._search.type = 'search';
    this._search.className = 'jp-mod-styled jp-StudioHub-SharedPanel-search';
    this._search.placeholder = 'Search by title or author';
    this._search.setAttribute(
      'aria-label',
      'Search notebooks shared with my domains'
    );
    this._search.addEventListener('input', () => {
      window.clearTimeout(this._searchTimer);
      this._searchTimer = window.setTimeout(() => {
        void this._model.search(this._search.value).catch(() => undefined);
      }, 250);
    });

    this._lists = {
      mine: this._section('Shared by me'),
      domains: this._section('Shared with my domains', this._search),
      recent: this._section('Recently opened')
    };
    this.node.append(
      header,
      this._error,
      this._lists.mine.section,
      this._lists.domains.section,
      this._lists.recent.section
    );
    this._model.changed.connect(this._render, this);
    this._render();
  }

  protected onAfterShow(): void {
    void this._model.refresh().catch(() => undefined);
  }

  private _section(
    title: string,
    extra?: HTMLElement
  ): { section: HTMLElement; list: HTMLUListElement } {
    const section = document.createElement('section');
    section.setAttribute('aria-label', title);
    const heading = document.createElement('h3');
    heading.textContent = title;
    const list = document.createElement('ul');
    list.setAttribute('aria-label', title);
    section.append(heading, ...(extra ? [extra] : []), list);
    return { section, list };
  }

  private _render(): void {
    this._error.textContent = this._model.error ?? '';
    this._error.hidden = !this._model.error;
    const empty: Record<ListKind, string> = {
      mine: 'Nothing yet. Use Share… in a notebook’s toolbar to share it with your domain.',
      domains: this._model.query
        ? `Nothing matches “${this._model.query}”.`
        : 'Nobody has shared a notebook with your domains yet.',
      recent: 'Shared notebooks you open appear here.'
    };
    const shares: Record<ListKind, ReadonlyArray<IShare>> = {
      mine: this._model.mine,
      domains: this._model.withMyDomains,
      recent: this._model.recent
    };
    for (const kind of ['mine', 'domains', 'recent'] as ListKind[]) {
      const list = this._lists[kind].list;
      list.innerHTML = '';
      if (shares[kind].length === 0) {
        const item = document.createElement('li');
        item.className = 'jp-StudioHub-SharedPanel-empty';
        item.textContent = empty[kind];
        list.append(item);
        continue;
      }
      for (const share of shares[kind]) {
        list.append(this._item(share, kind));
      }
    }
  }

  private _item(share: IShare, kind: ListKind): HTMLLIElement {
    const item = document.createElement('li');
    item.className = 'jp-StudioHub-SharedPanel-item';
    item.setAttribute('aria-label', share.title);
    if (share.revoked) {
      item.classList.add('jp-mod-revoked');
    }
    const title = document.createElement(share.revoked ? 'span' : 'a');
    title.className = 'jp-StudioHub-SharedPanel-title';
    title.textContent = share.title;
    if (title instanceof HTMLAnchorElement) {
      title.href = shareLink(this._origin, share.url);
      title.target = '_blank';
      title.rel = 'noopener';
      title.title = `Open the preview of ${share.title} in a new tab`;
    }
    const summary = document.createElement('div');
    summary.className = 'jp-StudioHub-SharedPanel-summary';
    summary.textContent = shareSummary(share, kind);

    const actions = document.createElement('div');
    actions.className = 'jp-StudioHub-SharedPanel-actions';
    if (!share.revoked) {
      if (kind === 'mine') {
        actions.append(
          makeButton({
            text: 'Copy link',
            label: `Copy the link to ${share.title}`,
            onClick: () =>
              this._commands.execute(CommandIDs.copyShareLink, {
                id: share.id
              })
          }),
          makeButton({
            text: 'New version…',
            label: `Publish a new version of ${share.title}`,
            onClick: () =>
              this._commands.execute(CommandIDs.shareNotebook, {
                shareId: share.id
              })
          }),
          makeButton({
            text: 'Revoke…',
            label: `Revoke the link to ${share.title}`,
            onClick: () =>
              this._commands.execute(CommandIDs.revokeShare, {
                id: share.id
              })
          })
        );
      } else {
        actions.append(
          makeButton({
            text: 'Copy to my workspace',
            label: `Copy ${share.title} to my workspace`,
            onClick: () =>
              this._commands.execute(CommandIDs.copyShare, {
                id: share.id
              })
          })
        );
      }
    }
    item.append(title, summary, actions);
    return item;
  }

  private _commands: CommandRegistry;
  private _model: ISharingModel;
  private _origin: string;
  private _error: HTMLDivElement;
  private _search: HTMLInputElement;
  private _searchTimer = 0;
  private _lists: Record<
    ListKind,
    { section: HTMLElement; list: HTMLUListElement }
  >;
}

export namespace SharedPanel {
  export interface IOptions {
    model: ISharingModel;
    commands: CommandRegistry;
    /** The hub's origin, for absolute links (`window.location.origin`). */
    origin: string;
  }
}
