import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IJobSpec, IKernelOptions } from '../tokens';
import { IFormValues, isNotebookPath, JobFormModel } from './model';

/**
 * The Run as Training Job… form: image and size (prefilled with the notebook's), workers,
 * parameters (notebooks) or arguments (scripts), retries and timeout. It shows the
 * service's dry run of what is filled in, and keeps Run disabled while it is refused.
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

    this._field('Image', this._choice('image', values.image, options?.images));
    this._field('Size', this._choice('size', values.size, options?.sizes));
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
    choices: { id: string; label: string }[] | undefined
  ): HTMLElement {
    if (!choices || choices.length === 0) {
      return this._text(key, value, 'the catalog default');
    }
    const select = document.createElement('select');
    const ids = choices.map(c => c.id);
    if (value && !ids.includes(value)) {
      select.append(new Option(value, value));
    }
    for (const choice of choices) {
      select.append(new Option(choice.label || choice.id, choice.id));
    }
    select.value = value || choices[0].id;
    if (!value) {
      this._form.update({ [key]: select.value });
    }
    select.addEventListener('change', () =>
      this._form.update({ [key]: select.value })
    );
    return select;
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
    this._verdict.textContent = verdict ? verdict.message : 'Checking…';
    const run = this.node
      .closest('.jp-Dialog-content')
      ?.querySelector<HTMLButtonElement>('.jp-Dialog-button.jp-mod-accept');
    if (run) {
      run.disabled = !verdict?.ok;
    }
  }

  private _form: JobFormModel;
  private _verdict: HTMLElement;
}
