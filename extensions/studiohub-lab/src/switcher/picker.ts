import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IChoice, IKernelOptions, ISizeOption } from '../tokens';
import { unavailableReason } from './choices';

/**
 * The picker's body: images, then sizes; a size that cannot run the selected image is
 * disabled with its reason next to it. Keyboard: Tab between groups, arrows within one.
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
    this._image =
      current.image && options.images.some(i => i.id === current.image)
        ? current.image
        : (options.images[0]?.id ?? '');
    this._size = current.size ?? '';
    this._note = note;
    this._sizes = document.createElement('fieldset');
    this._sizes.className = 'jp-StudioHub-Picker-group';
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
    this.node.append(intro, this._imageGroup(), this._sizes);
    this._renderSizes();
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
    for (const size of this.options.sizes) {
      const reason = unavailableReason(this.options, this._image, size.id);
      const row = this._radio('studiohub-size', size.id, size.label);
      row.input.checked = size.id === this._size;
      row.input.disabled = reason !== null;
      row.input.addEventListener('change', () => {
        this._size = size.id;
      });
      if (reason) {
        row.label.classList.add('jp-mod-disabled');
        const why = document.createElement('span');
        why.className = 'jp-StudioHub-Picker-reason';
        why.textContent = reason;
        row.label.appendChild(why);
      }
      this._sizes.appendChild(row.label);
    }
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
