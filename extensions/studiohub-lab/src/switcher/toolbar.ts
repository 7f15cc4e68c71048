import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import { CommandIDs, IKernelOptions, INotebookKernel } from '../tokens';
import { choiceLabel, usageLabel } from './labels';

/**
 * The notebook toolbar's "PyTorch 2.13 · CPU · 2 vCPU + 4 GiB   CPU 12% · 0.3 / 4 GiB":
 * where this notebook's kernel runs and what it uses now. A click opens the picker.
 * Renders the notebook's kernel model; owns no state.
 */
export class KernelChoiceItem extends Widget {
  constructor(options: KernelChoiceItem.IOptions) {
    super({ node: document.createElement('button') });
    this._kernel = options.kernel;
    this._options = options.options;
    this.addClass('jp-StudioHub-KernelChoice');
    this.addClass('jp-ToolbarButtonComponent');
    const button = this.node as HTMLButtonElement;
    button.type = 'button';
    button.title =
      'Change the image and size of this notebook (restarts its kernel only)';
    this._label.className = 'jp-StudioHub-KernelChoice-label';
    this._usage.className = 'jp-StudioHub-KernelChoice-usage';
    button.append(this._label, this._usage);
    button.addEventListener('click', () => {
      void options.commands.execute(CommandIDs.switchKernel);
    });
    this._kernel.changed.connect(this._render, this);
    this._render();
  }

  private _render(): void {
    const { kernelId, pending, report } = this._kernel;
    this.toggleClass('jp-mod-pending', pending !== null);
    if (pending !== null) {
      this._show(pending, '');
    } else if (report !== null) {
      this._show(choiceLabel(report, this._options()), usageLabel(report));
      this.node.dataset.image = report.choice.image ?? '';
      this.node.dataset.size = report.choice.size ?? '';
    } else if (kernelId === null) {
      this._show('No kernel', '');
    }
    // A new kernel without its first report yet keeps the last words shown.
  }

  private _show(label: string, usage: string): void {
    this._label.textContent = label;
    this._usage.textContent = usage;
  }

  private readonly _kernel: INotebookKernel;
  private readonly _label = document.createElement('span');
  private readonly _options: () => IKernelOptions | null;
  private readonly _usage = document.createElement('span');
}

export namespace KernelChoiceItem {
  export interface IOptions {
    /** The notebook's kernel model. */
    kernel: INotebookKernel;
    /** The switcher's options, for image labels the report lacks. */
    options: () => IKernelOptions | null;
    commands: CommandRegistry;
  }
}
