import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IChoice, IKernelOptions, ISizeOption } from '../tokens';
import { imageUnavailableReason, unavailableReason } from './choices';

/**
 * The picker's body: images, then sizes. An image no size can run for one reason (not
 * built here) is disabled with that reason, said once; a size that cannot run the
 * selected image is disabled with its reason. While the selection cannot run, the
 * dialog's accept button (Switch) is disabled and Enter does not accept. Keyboard: Tab
 * between groups, arrows within one.
 */
export class ChoicePicker
  extends Widget
  implements Dialog.IBodyWidget<IChoice>
{
  constructor(
    private readonly options: IKernelOptions,
    current: Partial<IChoice>,
    note: string
  ) {
    super();
    this.addClass('jp-StudioHub-Picker');
    this._image = firstImage(options, current.image);
    this._size = current.size ?? '';
    this._note = note;
    this._sizes = document.createElement('fieldset');
    this._sizes.className = 'jp-StudioHub-Picker-group';
    this._status = document.createElement('p');
    this._status.className = 'jp-StudioHub-Picker-status';
    this._status.setAttribute('role', 'status');
  }

  /**
   * Built on attach rather than in the constructor: the dialog restyles the inputs it
   * finds at construction as text fields, and these are radio buttons.
   */
  protected onBeforeAttach(): void {
    if (this.node.childElementCount > 0) {
      return;
    }
    const intro = document.createElement('p');
    intro.className = 'jp-StudioHub-Picker-note';
    intro.textContent = this._note;
    this.node.append(intro, this._imageGroup(), this._sizes, this._status);
    this._renderSizes();
  }

  /**
   * The dialog starts listening for its body's validity once attached: tell it then.
   */
  protected onAfterAttach(): void {
    window.setTimeout(() => this._validate(), 0);
  }

  getValue(): IChoice {
    return { image: this._image, size: this._size };
  }

  /**
   * Whether the selection can run now (the accept button is useless otherwise).
   */
  get valid(): boolean {
    return (
      this._size !== '' &&
      unavailableReason(this.options, this._image, this._size) === null
    );
  }

  private _imageGroup(): HTMLElement {
    const group = document.createElement('fieldset');
    group.className = 'jp-StudioHub-Picker-group';
    const legend = document.createElement('legend');
    legend.textContent = 'Image';
    group.appendChild(legend);
    for (const image of this.options.images) {
      const row = this._radio('studiohub-image', image.id, image.label);
      row.input.checked = image.id === this._image;
      row.input.addEventListener('change', () => {
        this._image = image.id;
        this._renderSizes();
      });
      if (image.description) {
        row.label.title = image.description;
      }
      this._disable(row, imageUnavailableReason(this.options, image.id));
      group.appendChild(row.label);
    }
    return group;
  }

  private _renderSizes(): void {
    this._sizes.textContent = '';
    const legend = document.createElement('legend');
    legend.textContent = 'Size';
    this._sizes.appendChild(legend);
    const usable = (s: ISizeOption) =>
      unavailableReason(this.options, this._image, s.id) === null;
    if (!this.options.sizes.some(s => s.id === this._size && usable(s))) {
      this._size = this.options.sizes.find(usable)?.id ?? '';
    }
    // The image's own reason is said on the image, not again on every size.
    const imageReason = imageUnavailableReason(this.options, this._image);
    for (const size of this.options.sizes) {
      const reason = unavailableReason(this.options, this._image, size.id);
      const row = this._radio('studiohub-size', size.id, size.label);
      row.input.checked = size.id === this._size;
      row.input.addEventListener('change', () => {
        this._size = size.id;
        this._validate();
      });
      this._disable(row, reason, reason === imageReason);
      this._sizes.appendChild(row.label);
    }
    this._validate();
  }

  /**
   * Disable a row that cannot be chosen, with its reason beside it unless said already.
   */
  private _disable(
    row: { label: HTMLLabelElement; input: HTMLInputElement },
    reason: string | null,
    saidAlready = false
  ): void {
    if (reason === null) {
      return;
    }
    row.input.disabled = true;
    row.label.classList.add('jp-mod-disabled');
    if (!saidAlready) {
      const why = document.createElement('span');
      why.className = 'jp-StudioHub-Picker-reason';
      why.textContent = reason;
      row.label.appendChild(why);
    }
  }

  /**
   * Say why nothing can be chosen, and mark it the way JupyterLab's dialog reads as a
   * validation error (`.jp-mod-error`, checked on every `input` event): it then
   * disables the accept button and refuses Enter.
   */
  private _validate(): void {
    const valid = this.valid;
    this._status.classList.toggle('jp-mod-error', !valid);
    this._status.textContent = valid
      ? ''
      : `No size can run ${this._imageLabel()} now: choose another image.`;
    this.node.dispatchEvent(new Event('input', { bubbles: true }));
  }

  private _imageLabel(): string {
    return (
      this.options.images.find(i => i.id === this._image)?.label ?? this._image
    );
  }

  private _radio(
    name: string,
    value: string,
    text: string
  ): { label: HTMLLabelElement; input: HTMLInputElement } {
    const label = document.createElement('label');
    label.className = 'jp-StudioHub-Picker-option';
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = name;
    input.value = value;
    label.dataset.value = value;
    const span = document.createElement('span');
    span.textContent = text;
    label.append(input, span);
    return { label, input };
  }

  private _image: string;
  private _size: string;
  private readonly _note: string;
  private readonly _sizes: HTMLFieldSetElement;
  private readonly _status: HTMLParagraphElement;
}

/**
 * The image the picker opens on: the current one if it can run, else the first that
 * can (an image not built here cannot be selected).
 */
function firstImage(options: IKernelOptions, current?: string): string {
  const runnable = (id: string) => imageUnavailableReason(options, id) === null;
  if (current && options.images.some(i => i.id === current && runnable(i.id))) {
    return current;
  }
  const known = options.images.some(i => i.id === current);
  return (
    options.images.find(i => runnable(i.id))?.id ??
    (known && current ? current : (options.images[0]?.id ?? ''))
  );
}

/**
 * Ask for an image and size; null when cancelled.
 */
export async function pickChoice(
  options: IKernelOptions,
  current: Partial<IChoice>,
  title: string,
  note: string,
  acceptLabel: string,
  warn = false
): Promise<IChoice | null> {
  const body = new ChoicePicker(options, current, note);
  const result = await new Dialog<IChoice>({
    title,
    body,
    buttons: [
      Dialog.cancelButton(),
      warn
        ? Dialog.warnButton({ label: acceptLabel })
        : Dialog.okButton({ label: acceptLabel })
    ],
    focusNodeSelector: '.jp-StudioHub-Picker input:checked'
  }).launch();
  if (!result.button.accept || !result.value) {
    return null;
  }
  return result.value;
}
