import { Time } from '@jupyterlab/coreutils';
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import { makeButton } from '../components/button';
import { CommandIDs, IKernelOptions, ITrainingModel } from '../tokens';
import { formatElapsed, isFinal, jobChoiceLabel, statusLine } from './model';

/**
 * The Training sidebar: my jobs, newest first, with their live status; a click opens
 * the job's tab, Cancel stops a job still going, Delete forgets a finished one.
 * Renders the model (which polls); every action is a command.
 */
export class TrainingPanel extends Widget {
  constructor(options: TrainingPanel.IOptions) {
    super();
    this._model = options.model;
    this._commands = options.commands;
    this._kernelOptions = options.kernelOptions ?? (() => null);
    this.id = 'studiohub-training';
    this.addClass('jp-StudioHub-TrainingPanel');
    this.title.caption = 'Training jobs';
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'Training jobs');

    const header = document.createElement('header');
    const heading = document.createElement('h2');
    heading.textContent = 'Training';
    header.append(
      heading,
      makeButton({
        text: 'Refresh',
        label: 'Refresh training jobs',
        onClick: () => this._model.refresh().catch(() => undefined)
      })
    );
    this._error = document.createElement('div');
    this._error.className = 'jp-StudioHub-TrainingPanel-error';
    this._error.setAttribute('role', 'alert');
    this._list = document.createElement('ul');
    this._list.setAttribute('aria-label', 'My training jobs');
    this.node.append(header, this._error, this._list);
    this._model.changed.connect(this._render, this);
    this._render();
  }

  protected onAfterShow(): void {
    void this._model.refresh().catch(() => undefined);
  }

  private _render(): void {
    this._error.textContent = this._model.error ?? '';
    this._list.replaceChildren();
    if (this._model.jobs.length === 0) {
      const empty = document.createElement('li');
      empty.className = 'jp-StudioHub-TrainingPanel-empty';
      empty.textContent =
        'No training jobs yet: right-click a notebook or .py file and choose Run as Training Job…';
      this._list.append(empty);
      return;
    }
    for (const job of this._model.jobs) {
      const item = document.createElement('li');
      item.className = `jp-StudioHub-TrainingPanel-job jp-mod-${job.status}`;
      item.setAttribute('aria-label', `Training job ${job.name} (${job.id})`);
      const open = document.createElement('button');
      open.type = 'button';
      open.className = 'jp-StudioHub-TrainingPanel-open';
      open.setAttribute(
        'aria-label',
        `Open training job ${job.name} (${job.id})`
      );
      const name = document.createElement('span');
      name.className = 'jp-StudioHub-TrainingPanel-name';
      name.textContent = job.name;
      const status = document.createElement('span');
      status.className = 'jp-StudioHub-TrainingPanel-status';
      status.textContent = statusLine(job);
      const when = document.createElement('span');
      when.className = 'jp-StudioHub-TrainingPanel-when';
      when.textContent = [
        jobChoiceLabel(job, this._kernelOptions()),
        formatElapsed(job.started, job.finished)
      ]
        .filter(Boolean)
        .join(' · ');
      // Two runs of one script differ by when they were submitted and their id.
      const submitted = document.createElement('span');
      submitted.className = 'jp-StudioHub-TrainingPanel-submitted';
      submitted.textContent = [
        job.created ? `submitted ${Time.formatHuman(job.created)}` : '',
        job.id
      ]
        .filter(Boolean)
        .join(' · ');
      if (job.created) {
        submitted.title = Time.format(job.created);
      }
      open.append(name, status, when, submitted);
      open.addEventListener('click', () => {
        void this._commands.execute(CommandIDs.openTrainingJob, { id: job.id });
      });
      item.append(open);
      // A job still going can be cancelled; a finished one deleted (both confirm).
      const [verb, command] = isFinal(job.status)
        ? ['Delete', CommandIDs.deleteTrainingJob]
        : ['Cancel', CommandIDs.cancelTrainingJob];
      item.append(
        makeButton({
          text: verb,
          label: `${verb} training job ${job.name} (${job.id})`,
          onClick: () => this._commands.execute(command, { id: job.id })
        })
      );
      this._list.append(item);
    }
  }

  private _model: ITrainingModel;
  private _commands: CommandRegistry;
  private _kernelOptions: () => IKernelOptions | null;
  private _error: HTMLElement;
  private _list: HTMLUListElement;
}

export namespace TrainingPanel {
  export interface IOptions {
    model: ITrainingModel;
    commands: CommandRegistry;
    /** The catalog's images and sizes, to show their labels rather than ids. */
    kernelOptions?: () => IKernelOptions | null;
  }
}
