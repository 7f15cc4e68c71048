import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { imageUnavailableReason, unavailableReason } from '../switcher/choices';
import { IEndpointSpec, IKernelOptions } from '../tokens';
import { plainText, withCode } from '../training/form';
import { DeployFormModel, IDeployValues } from './model';

/**
 * The Deploy as Endpoint… form: endpoint name, model path, image and size (the
 * catalog's, those that cannot run disabled with their reason), replicas and the new
 * version's canary share. It shows the service's dry run of what is filled in and
 * keeps Deploy disabled while it is refused.
 */
export class DeployForm
  extends Widget
  implements Dialog.IBodyWidget<IEndpointSpec>
{
  constructor(form: DeployFormModel, options: IKernelOptions | null) {
    super();
    this._form = form;
    this._options = options;
    this.addClass('jp-StudioHub-DeployForm');
    const values = form.values;

    this._field(
      'Endpoint name',
      this._text('name', values.name, 'iris (lowercase, digits, dashes)')
    );
    this._field(
      'Model',
      this._text('model', values.model, 'models/net or model.onnx')
    );
    const image = this._choice('image', values.image, options?.images, id =>
      options ? imageUnavailableReason(options, id) : null
    );
    this._field('Image', image);
    const size = this._choice('size', values.size, options?.sizes, id =>
      options ? unavailableReason(options, this._form.values.image, id) : null
    );
    this._field('Size', size);
    if (image instanceof HTMLSelectElement) {
      image.addEventListener('change', () => this._refreshSizes(size));
    }
    const replicas = document.createElement('input');
    replicas.type = 'number';
    replicas.name = 'replicas';
    replicas.min = '1';
    replicas.max = '16';
    replicas.value = String(values.replicas);
    replicas.addEventListener('input', () =>
      this._form.update({ replicas: Number(replicas.value) })
    );
    this._field('Replicas', replicas);
    const canary = document.createElement('input');
    canary.type = 'number';
    canary.name = 'canary';
    canary.min = '0';
    canary.max = '100';
    canary.placeholder = '100 (all traffic once ready)';
    canary.title =
      'A new version of an existing endpoint gets this share of the requests once its replicas are ready; the rest stays on the previous version until you promote or roll back.';
    canary.value = values.canary === null ? '' : String(values.canary);
    canary.addEventListener('input', () =>
      this._form.update({
        canary: canary.value.trim() === '' ? null : Number(canary.value)
      })
    );
    this._field('Canary %', canary);

    this._verdict = document.createElement('div');
    this._verdict.className = 'jp-StudioHub-DeployForm-verdict';
    this._verdict.setAttribute('role', 'status');
    this._verdict.setAttribute('aria-label', 'Can this model be deployed');
    this.node.append(this._verdict);
    form.changed.connect(this._render, this);
    this._render();
    void form.checkNow();
  }

  getValue(): IEndpointSpec {
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
    wrapper.className = 'jp-StudioHub-DeployForm-field';
    const text = document.createElement('span');
    text.textContent = label;
    input.classList.add('jp-mod-styled');
    wrapper.append(text, input);
    this.node.append(wrapper);
  }

  private _text(
    key: 'name' | 'model',
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
      this._form.update({ [key]: input.value })
    );
    return input;
  }

  private _choice(
    key: 'image' | 'size',
    value: string,
    choices: { id: string; label: string }[] | undefined,
    reason: (id: string) => string | null
  ): HTMLElement {
    if (!choices || choices.length === 0) {
      const input = document.createElement('input');
      input.type = 'text';
      input.name = key;
      input.value = value;
      input.placeholder = 'the catalog default';
      input.addEventListener('input', () =>
        this._form.update({ [key]: input.value })
      );
      return input;
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
      this._form.update({ [key]: select.value } as Partial<IDeployValues>);
    }
    select.addEventListener('change', () =>
      this._form.update({ [key]: select.value })
    );
    return select;
  }

  /** Disable the choices that cannot run, each with its reason (as the job form does). */
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

  private _render(): void {
    const verdict = this._form.verdict;
    this._verdict.classList.toggle('jp-mod-refused', verdict?.ok === false);
    this._verdict.classList.toggle('jp-mod-ok', verdict?.ok === true);
    this._verdict.replaceChildren(
      ...withCode(verdict ? verdict.message : 'Checking…')
    );
    const deploy = this.node
      .closest('.jp-Dialog-content')
      ?.querySelector<HTMLButtonElement>('.jp-Dialog-button.jp-mod-accept');
    if (deploy) {
      deploy.disabled = !verdict?.ok;
    }
  }

  private _form: DeployFormModel;
  private _options: IKernelOptions | null;
  private _reasons = new Map<
    HTMLSelectElement,
    (id: string) => string | null
  >();
  private _verdict: HTMLElement;
}
