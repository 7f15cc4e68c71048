import { DryRunForm } from '../components/dryRunForm';
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
export class JobForm extends DryRunForm<IFormValues, IJobSpec> {
  constructor(form: JobFormModel, options: IKernelOptions | null) {
    super(form, options, {
      className: 'jp-StudioHub-JobForm',
      verdictLabel: 'Can this job run'
    });
    const values = form.values;
    const notebook = isNotebookPath(values.path);

    const file = document.createElement('p');
    file.className = 'jp-StudioHub-JobForm-file';
    file.textContent = `${notebook ? 'Notebook' : 'Script'}: ${values.path}`;
    this.node.append(file);

    this.imageAndSize();
    this.field('Workers', this._number('workers', values.workers, 1, 64));
    if (notebook) {
      const area = document.createElement('textarea');
      area.rows = 3;
      area.placeholder = 'learning_rate=0.01\nepochs=5';
      area.value = values.parameters;
      area.addEventListener('input', () =>
        form.update({ parameters: area.value })
      );
      this.field('Parameters (name=value, one a line)', area);
    } else {
      this.field(
        'Arguments',
        this.text('args', values.args, '--epochs 5 --lr 0.01')
      );
    }
    this.field('Retries', this._number('maxRetries', values.maxRetries, 0, 10));
    this.field(
      'Timeout',
      this.text('timeout', values.timeout, 'e.g. 90m, 2h (empty: none)')
    );
    this.startChecking();
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
      this.form.update({ [key]: Number(input.value) })
    );
    return input;
  }
}
