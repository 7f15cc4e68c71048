import { Clipboard, Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { makeButton } from '../components/button';
import { formatWhen, shareResultText } from './logic';
import { IDomain, IShare, IShareRequest } from '../tokens';

/**
 * The body of the Share… dialog: where to (a new link in one of my domains, or a new
 * version of a link I already have for this notebook), outputs or not, a note.
 */
export class ShareForm
  extends Widget
  implements Dialog.IBodyWidget<IShareRequest>
{
  constructor(options: ShareForm.IOptions) {
    super();
    this.addClass('jp-StudioHub-ShareForm');
    this._path = options.path;
    this._existing = options.existing;
    const form = document.createElement('form');
    form.addEventListener('submit', event => event.preventDefault());

    const target = document.createElement('p');
    target.className = 'jp-StudioHub-ShareForm-target';
    target.textContent = options.path;
    form.append(target);

    if (options.existing.length > 0) {
      const fieldset = document.createElement('fieldset');
      const legend = document.createElement('legend');
      legend.textContent = 'You already share this notebook';
      fieldset.append(legend);
      const selected = options.selected ?? options.existing[0].id;
      for (const share of options.existing) {
        fieldset.append(
          this._radio(
            share.id,
            `Publish a new version to the same link (${share.domain_name}, v${share.version}, updated ${formatWhen(share.updated)})`,
            share.id === selected
          )
        );
      }
      fieldset.append(this._radio('', 'Create a new link', selected === ''));
      form.append(fieldset);
    }

    const domainLabel = document.createElement('label');
    domainLabel.textContent = 'Share with';
    this._domain = document.createElement('select');
    this._domain.className = 'jp-mod-styled';
    for (const domain of options.domains) {
      const option = document.createElement('option');
      option.value = domain.id;
      option.textContent = domain.name;
      this._domain.append(option);
    }
    domainLabel.append(this._domain);

    const outputsLabel = document.createElement('label');
    outputsLabel.className = 'jp-StudioHub-ShareForm-check';
    this._outputs = document.createElement('input');
    this._outputs.type = 'checkbox';
    this._outputs.checked = true;
    outputsLabel.append(this._outputs, 'Include outputs');

    const noteLabel = document.createElement('label');
    noteLabel.textContent = 'Note (optional)';
    this._note = document.createElement('textarea');
    this._note.className = 'jp-mod-styled';
    this._note.rows = 3;
    this._note.maxLength = 2000;
    this._note.placeholder = 'What should readers look at?';
    noteLabel.append(this._note);

    const hint = document.createElement('p');
    hint.className = 'jp-StudioHub-ShareForm-hint';
    hint.textContent =
      'A snapshot of the saved notebook is shared, with its image and size. Members of the domain can preview it and copy it to their workspace; nobody can change yours.';

    form.append(domainLabel, outputsLabel, noteLabel, hint);
    this.node.append(form);
    this._syncDomain();
  }

  getValue(): IShareRequest {
    return {
      path: this._path,
      shareId: this._shareId,
      domain: this._domain.value,
      includeOutputs: this._outputs.checked,
      note: this._note.value
    };
  }

  private _radio(id: string, text: string, checked: boolean): HTMLLabelElement {
    const label = document.createElement('label');
    label.className = 'jp-StudioHub-ShareForm-check';
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = 'studiohub-share-target';
    input.value = id;
    input.checked = checked;
    if (checked) {
      this._shareId = id || null;
    }
    input.addEventListener('change', () => {
      this._shareId = input.value || null;
      this._syncDomain();
    });
    label.append(input, text);
    return label;
  }

  /**
   * A new version stays in its link's domain: the domain is chosen only for a new link.
   */
  private _syncDomain(): void {
    if (!this._domain) {
      return; // (the radios come first, while building)
    }
    const share = this._existing.find(s => s.id === this._shareId);
    this._domain.disabled = share !== undefined;
    if (
      share &&
      [...this._domain.options].some(o => o.value === share.domain)
    ) {
      this._domain.value = share.domain;
    }
  }

  private _path: string;
  private _shareId: string | null = null;
  private _existing: IShare[];
  private _domain: HTMLSelectElement;
  private _outputs: HTMLInputElement;
  private _note: HTMLTextAreaElement;
}

export namespace ShareForm {
  export interface IOptions {
    path: string;
    domains: IDomain[];
    /** My live links for a notebook of this name (newest first). */
    existing: IShare[];
    /** The link preselected for a new version (default: the newest; '' for a new link). */
    selected?: string | null;
  }
}

/**
 * The dialog's answer: the whole link, wrapped rather than cut (a click selects all of
 * it), with Copy and Open buttons.
 */
export class ShareLinkBody extends Widget {
  constructor(link: string, share: IShare, newVersion: boolean) {
    super();
    this.addClass('jp-StudioHub-ShareLink');
    const text = document.createElement('p');
    text.textContent = shareResultText(share, newVersion);
    const row = document.createElement('div');
    row.className = 'jp-StudioHub-ShareLink-row';
    const url = document.createElement('code');
    url.className = 'jp-StudioHub-ShareLink-url';
    url.textContent = link;
    url.title = 'Link to the shared notebook';
    const copy = makeButton({
      text: 'Copy',
      label: 'Copy link',
      variant: 'accept',
      onClick: () => {
        Clipboard.copyToSystem(link);
        copy.textContent = 'Copied';
      }
    });
    const open = document.createElement('a');
    open.className = 'jp-StudioHub-ShareLink-open';
    open.href = link;
    open.target = '_blank';
    open.rel = 'noopener';
    open.textContent = 'Open preview';
    row.append(url, copy);
    this.node.append(text, row, open);
  }
}
