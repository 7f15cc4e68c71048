import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { imageUnavailableReason, unavailableReason } from '../switcher/choices';
import { IKernelOptions } from '../tokens';
import { DryRunFormModel } from './dryRun';
import { plainText, withCode } from './text';

/** The values every such form has: an image and a size of the catalog. */
export interface ICatalogValues {
  image: string;
  size: string;
}

/**
 * The body of a dialog whose values the service checks as they change (Run as
 * Training Job…, Deploy as Endpoint…): labelled fields, the catalog's images and sizes
 * (those that cannot run here disabled with their reason, from the same kernel
 * options and rules as the notebook's picker), and the dry run's verdict, with the
 * dialog's accept button disabled while it is refused. A subclass adds its fields in
 * its constructor, then calls `startChecking()`.
 */
export abstract class DryRunForm<V extends ICatalogValues, S>
  extends Widget
  implements Dialog.IBodyWidget<S>
{
  constructor(
    form: DryRunFormModel<V, S>,
    options: IKernelOptions | null,
    naming: DryRunForm.INaming
  ) {
    super();
    this.form = form;
    this._options = options;
    this._naming = naming;
    this.addClass(naming.className);
    this._verdict = document.createElement('div');
    this._verdict.className = `${naming.className}-verdict`;
    this._verdict.setAttribute('role', 'status');
    this._verdict.setAttribute('aria-label', naming.verdictLabel);
  }

  getValue(): S {
    return this.form.spec();
  }

  protected onAfterAttach(): void {
    this._render();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.form.dispose();
    super.dispose();
  }

  /** A labelled field, in the order added. */
  protected field(label: string, input: HTMLElement): void {
    const wrapper = document.createElement('label');
    wrapper.className = `${this._naming.className}-field`;
    const text = document.createElement('span');
    text.textContent = label;
    input.classList.add('jp-mod-styled');
    wrapper.append(text, input);
    this.node.append(wrapper);
  }

  /** A text input bound to one of the values. */
  protected text(
    key: keyof V & string,
    value: string,
    placeholder: string
  ): HTMLInputElement {
    const input = document.createElement('input');
    input.type = 'text';
    input.name = key;
    input.value = value;
    input.placeholder = placeholder;
    input.spellcheck = false;
    input.addEventListener('input', () =>
      this.form.update({ [key]: input.value } as Partial<V>)
    );
    return input;
  }

  /** The Image and Size fields; which sizes can run is said again on each image change. */
  protected imageAndSize(): void {
    const options = this._options;
    const values = this.form.values;
    const image = this._choice('image', values.image, options?.images, id =>
      options ? imageUnavailableReason(options, id) : null
    );
    this.field('Image', image);
    const size = this._choice('size', values.size, options?.sizes, id =>
      options ? unavailableReason(options, this.form.values.image, id) : null
    );
    this.field('Size', size);
    if (image instanceof HTMLSelectElement) {
      image.addEventListener('change', () => this._refreshSizes(size));
    }
  }

  /** The verdict below the fields, and the first dry run now. */
  protected startChecking(): void {
    this.node.append(this._verdict);
    this.form.changed.connect(this._render, this);
    this._render();
    void this.form.checkNow();
  }

  protected readonly form: DryRunFormModel<V, S>;

  private _choice(
    key: keyof ICatalogValues,
    value: string,
    choices: { id: string; label: string }[] | undefined,
    reason: (id: string) => string | null
  ): HTMLElement {
    if (!choices || choices.length === 0) {
      return this.text(key, value, 'the catalog default');
    }
    const select = document.createElement('select');
    select.name = key;
    if (value && !choices.some(c => c.id === value)) {
      select.append(new Option(value, value));
    }
    for (const choice of choices) {
      const option = new Option(choice.label || choice.id, choice.id);
      option.dataset.label = option.text;
      select.append(option);
    }
    this._reasons.set(select, reason);
    select.value = value || choices[0].id;
    this._markUnavailable(select);
    if (select.value !== value) {
      this.form.update({ [key]: select.value } as Partial<V>);
    }
    select.addEventListener('change', () =>
      this.form.update({ [key]: select.value } as Partial<V>)
    );
    return select;
  }

  /**
   * Disable the choices that cannot run, their reason beside the label (backticks
   * dropped: an option shows plain text). A disabled selection moves to the first
   * choice that can run, as the picker does; with none, it stays for the verdict.
   */
  private _markUnavailable(select: HTMLSelectElement): void {
    const reason = this._reasons.get(select);
    if (!reason || !this._options) {
      return;
    }
    for (const option of Array.from(select.options)) {
      const why =
        option.dataset.label === undefined ? null : reason(option.value);
      option.disabled = why !== null;
      option.text = why
        ? `${option.dataset.label} (${plainText(why)})`
        : (option.dataset.label ?? option.text);
      option.title = why ? plainText(why) : '';
    }
    if (select.selectedOptions[0]?.disabled) {
      const usable = Array.from(select.options).find(o => !o.disabled);
      if (usable) {
        select.value = usable.value;
      }
    }
  }

  /** After the image changed: mark the sizes anew, moving off one that cannot run it. */
  private _refreshSizes(size: HTMLElement): void {
    if (!(size instanceof HTMLSelectElement)) {
      return;
    }
    const before = size.value;
    this._markUnavailable(size);
    if (size.value !== before) {
      this.form.update({ size: size.value } as Partial<V>);
    }
  }

  private _render(): void {
    const verdict = this.form.verdict;
    this._verdict.classList.toggle(
      'jp-mod-refused',
      verdict?.ok === false && !verdict.incomplete
    );
    this._verdict.classList.toggle(
      'jp-mod-incomplete',
      verdict?.incomplete === true
    );
    this._verdict.classList.toggle('jp-mod-ok', verdict?.ok === true);
    this._verdict.replaceChildren(
      ...withCode(verdict ? verdict.message : 'Checking…')
    );
    const accept = this.node
      .closest('.jp-Dialog-content')
      ?.querySelector<HTMLButtonElement>('.jp-Dialog-button.jp-mod-accept');
    if (accept) {
      accept.disabled = !verdict?.ok;
    }
  }

  private _options: IKernelOptions | null;
  private _naming: DryRunForm.INaming;
  private _reasons = new Map<
    HTMLSelectElement,
    (id: string) => string | null
  >();
  private _verdict: HTMLElement;
}

export namespace DryRunForm {
  export interface INaming {
    /** The form's CSS class; its fields and verdict take it with `-field`, `-verdict`. */
    className: string;
    /** What a screen reader calls the verdict ("Can this job run"). */
    verdictLabel: string;
  }
}
