import { Poll } from '@lumino/polling';
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import {
  choiceLabel,
  getKernelReport,
  IKernelOptions,
  IKernelReport,
  usageLabel
} from './model';

/**
 * The notebook toolbar's "PyTorch 2.13 · CPU · 2 vCPU + 4 GiB   CPU 12% · 0.3 / 4 GiB":
 * where this notebook's kernel runs and what it uses now. A click opens the picker.
 */
export class KernelChoiceItem extends Widget {
  constructor(
    private readonly commands: CommandRegistry,
    private readonly command: string,
    private readonly options: () => IKernelOptions | null
  ) {
    super({ node: document.createElement('button') });
    this.addClass('jp-StudioHub-KernelChoice');
    this.addClass('jp-ToolbarButtonComponent');
    const button = this.node as HTMLButtonElement;
    button.type = 'button';
    button.title =
      'Change the image and size of this notebook (restarts its kernel only)';
    this._label.className = 'jp-StudioHub-KernelChoice-label';
    this._usage.className = 'jp-StudioHub-KernelChoice-usage';
    this._label.textContent = 'No kernel';
    button.append(this._label, this._usage);
    button.addEventListener('click', () => {
      void this.commands.execute(this.command);
    });
    this._poll = new Poll({
      factory: () => this.refresh(),
      frequency: { interval: 2000, backoff: true, max: 30000 },
      standby: 'when-hidden',
      name: 'studiohub:kernel-usage'
    });
  }

  /**
   * The kernel shown; null while the notebook has none.
   */
  get kernelId(): string | null {
    return this._kernelId;
  }
  set kernelId(id: string | null) {
    this._kernelId = id;
    this.report = null;
    if (!id) {
      this._label.textContent = 'No kernel';
      this._usage.textContent = '';
    }
    void this._poll.refresh();
  }

  /**
   * The last report, or null before the first one.
   */
  report: IKernelReport | null = null;

  /**
   * Show a transient state (e.g. "Switching to …") until the next report.
   */
  showPending(text: string): void {
    this._label.textContent = text;
    this._usage.textContent = '';
    this.addClass('jp-mod-pending');
  }

  async refresh(): Promise<void> {
    const id = this._kernelId;
    if (!id || this.isDisposed) {
      return;
    }
    let report: IKernelReport;
    try {
      report = await getKernelReport(id);
    } catch {
      return; // starting or gone: the next tick or kernel change will tell
    }
    if (id !== this._kernelId) {
      return;
    }
    this.report = report;
    this.removeClass('jp-mod-pending');
    this._label.textContent = choiceLabel(report, this.options());
    this._usage.textContent = usageLabel(report);
    this.node.dataset.image = report.choice.image ?? '';
    this.node.dataset.size = report.choice.size ?? '';
  }

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  private _kernelId: string | null = null;
  private readonly _label = document.createElement('span');
  private readonly _usage = document.createElement('span');
  private readonly _poll: Poll;
}
