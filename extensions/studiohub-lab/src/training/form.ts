import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { imageUnavailableReason, unavailableReason } from '../switcher/choices';
import { IJobSpec, IKernelOptions } from '../tokens';
import { IFormValues, isNotebookPath, JobFormModel } from './model';

/**
 * The Run as Training Job… form: image and size (prefilled with the notebook's), workers,
 * parameters (notebooks) or arguments (scripts), retries and timeout. It shows the
 * service's dry run of what is filled in, and keeps Run disabled while it is refused.
 * Images and sizes that cannot run here are disabled with their reason, from the same
 * kernel options and rules as the notebook's picker (an unbuilt image says its build
 * command once, on the image; a size says why it cannot run the chosen image).
 */
export class JobForm extends Widget implements Dialog.IBodyWidget<IJobSpec> {
  constructor(form: JobFormModel, options: IKernelOptions | null) {
    super();
    this._form = form;
    this.addClass('jp-StudioHub-JobForm');
    const values = form.values;
    const notebook = isNotebookPath(values.path);

    const file = document.createElement('p');
    file.className = 'jp-StudioHub-JobForm-file';
    file.textContent = `${notebook ? 'Notebook' : 'Script'}: ${values.path}`;
    this.node.append(file);

    this._options = options;
    const image = this._choice('image', values.image, options?.images, id =>
      options ? imageUnavailableReason(options, id) : null
    );
    this._field('Image', image);
    const size = this._choice('size', values.size, options?.sizes, id =>
      options ? unavailableReason(options, this._form.values.image, id) : null
    );
    this._field('Size', size);
    if (image instanceof HTMLSelectElement) {
      // Which sizes can run depends on the image: say so again on each change.
      image.addEventListener('change', () => this._refreshSizes(size));
    }
    this._field('Workers', this._number('workers', values.workers, 1, 64));
    if (notebook) {
      const area = document.createElement('textarea');
      area.rows = 3;
      area.placeholder = 'learning_rate=0.01\nepochs=5';
      area.value = values.parameters;
      area.addEventListener('input', () =>
        form.update({ parameters: area.value })
      );
      this._field('Parameters (name=value, one a line)', area);
    } else {
      this._field(
        'Arguments',
        this._text('args', values.args, '--epochs 5 --lr 0.01')
      );
    }
    this._field(
      'Retries',
      this._number('maxRetries', values.maxRetries, 0, 10)
    );
    this._field(
      'Timeout',
      this._text('timeout', values.timeout, 'e.g. 90m, 2h (empty: none)')
    );

    this._verdict = document.createElement('div');
    this._verdict.className = 'jp-StudioHub-JobForm-verdict';
    this._verdict.setAttribute('role', 'status');
    this._verdict.setAttribute('aria-label', 'Can this job run');
    this.node.append(this._verdict);
    form.changed.connect(this._render, this);
    this._render();
    void form.checkNow();
  }

  getValue(): IJobSpec {
    return this._form.spec();
  }

  protected onAfterAttach(): void {
    this._render();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._form.dispose();
    super.dispose();
  }

  private _field(label: string, input: HTMLElement): void {
    const wrapper = document.createElement('label');
    wrapper.className = 'jp-StudioHub-JobForm-field';
    const text = document.createElement('span');
    text.textContent = label;
    input.classList.add('jp-mod-styled');
    wrapper.append(text, input);
    this.node.append(wrapper);
  }

  private _choice(
    key: 'image' | 'size',
    value: string,
    choices: { id: string; label: string }[] | undefined,
    reason: (id: string) => string | null
  ): HTMLElement {
    if (!choices || choices.length === 0) {
      return this._text(key, value, 'the catalog default');
    }
    const select = document.createElement('select');
    select.name = key;
    const ids = choices.map(c => c.id);
    if (value && !ids.includes(value)) {
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
      this._form.update({ [key]: select.value });
    }
    select.addEventListener('change', () =>
      this._form.update({ [key]: select.value })
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
      this._form.update({ size: size.value });
    }
  }

  private _number(
    key: 'workers' | 'maxRetries',
    value: number,
    min: number,
    max: number
  ): HTMLInputElement {
    const input = document.createElement('input');
    input.type = 'number';
    input.min = String(min);
    input.max = String(max);
    input.value = String(value);
    input.addEventListener('input', () =>
      this._form.update({ [key]: Number(input.value) })
    );
    return input;
  }

  private _text(
    key: keyof IFormValues,
    value: string,
    placeholder: string
  ): HTMLInputElement {
    const input = document.createElement('input');
    input.type = 'text';
    input.value = value;
    input.placeholder = placeholder;
    input.addEventListener('input', () =>
      this._form.update({ [key]: input.value })
    );
    return input;
  }

  private _render(): void {
    const verdict = this._form.verdict;
    this._verdict.classList.toggle('jp-mod-refused', verdict?.ok === false);
    this._verdict.classList.toggle('jp-mod-ok', verdict?.ok === true);
    this._verdict.replaceChildren(
      ...withCode(verdict ? verdict.message : 'Checking…')
    );
    const run = this.node
      .closest('.jp-Dialog-content')
      ?.querySelector<HTMLButtonElement>('.jp-Dialog-button.jp-mod-accept');
    if (run) {
      run.disabled = !verdict?.ok;
    }
  }

  private _form: JobFormModel;
  private _options: IKernelOptions | null;
  private _reasons = new Map<
    HTMLSelectElement,
    (id: string) => string | null
  >();
  private _verdict: HTMLElement;
}

/**
 * A message's text with its `backticked` commands as <code>, the way the spawn page
 * shows them, rather than literal backticks.
 */
export function withCode(message: string): (string | HTMLElement)[] {
  return message.split(/`([^`]+)`/).map((part, index) => {
    if (index % 2 === 0) {
      return part;
    }
    const code = document.createElement('code');
    code.textContent = part;
    return code;
  });
}

/** A message without its backticks, for where only plain text shows (an option). */
export function plainText(message: string): string {
  return message.replace(/`([^`]+)`/g, '$1');
}
