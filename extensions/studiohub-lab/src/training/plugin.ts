import {
  ILayoutRestorer,
  IRouter,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  MainAreaWidget,
  Notification,
  showDialog,
  showErrorMessage,
  WidgetTracker
} from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Contents } from '@jupyterlab/services';
import { LabIcon, runIcon, ToolbarButton } from '@jupyterlab/ui-components';

import { errorText } from '../components/errors';
import { addSidebar } from '../components/sidebar';
import { isModelFile } from '../endpoints/model';
import {
  CommandIDs,
  IChoice,
  IJob,
  IKernelOptions,
  ISwitcher,
  ITrainingModel,
  PLUGIN_IDS
} from '../tokens';
import { JobForm } from './form';
import {
  allowedOr,
  IFormValues,
  isNotebookPath,
  isScriptPath,
  JobFormModel,
  TrainingModel
} from './model';
import { TrainingPanel } from './panel';
import { JobView } from './widget';

const CATEGORY = 'Training';

export const trainingIcon = new LabIcon({
  name: 'studiohub:training',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" d="M3 20h18v2H3zM5 10h3v8H5zm5.5-4h3v12h-3zM16 2h3v16h-3z"/></svg>'
});

/** `metadata.studiohub` of an open notebook: the image and size it runs on. */
function notebookChoice(panel: NotebookPanel | undefined): Partial<IChoice> {
  const saved = panel?.content.model?.getMetadata('studiohub') as
    Partial<IChoice> | undefined;
  return saved && typeof saved === 'object' ? saved : {};
}

/**
 * Run as Training Job… on notebooks and scripts (notebook toolbar, file browser, palette),
 * a job's tab with its actions; provides the training model to the sidebar.
 */
const trainingPlugin: JupyterFrontEndPlugin<ITrainingModel> = {
  id: PLUGIN_IDS.training,
  description:
    'Run notebooks and scripts as training jobs, and watch them in tabs.',
  autoStart: true,
  provides: ITrainingModel,
  optional: [
    INotebookTracker,
    ICommandPalette,
    IDefaultFileBrowser,
    ILayoutRestorer,
    ISwitcher
  ],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker | null,
    palette: ICommandPalette | null,
    fileBrowser: IDefaultFileBrowser | null,
    restorer: ILayoutRestorer | null,
    switcher: ISwitcher | null
  ): ITrainingModel => {
    const model = new TrainingModel();
    const { commands, shell } = app;
    const tabs = new WidgetTracker<MainAreaWidget<JobView>>({
      namespace: 'studiohub-training-job'
    });

    /** The file the command is about: its argument, the file browser, or the current one. */
    const targetPath = (args: Record<string, unknown>): string | null => {
      if (typeof args.path === 'string') {
        return args.path;
      }
      if (args.from === 'filebrowser' && fileBrowser) {
        const item = Array.from(fileBrowser.selectedItems()).find(
          i => isNotebookPath(i.path) || isScriptPath(i.path)
        );
        return item?.path ?? null;
      }
      const current = shell.currentWidget as {
        context?: { path?: string };
      } | null;
      return (
        current?.context?.path ?? notebooks?.currentWidget?.context.path ?? null
      );
    };

    /** The image and size to start from: the notebook's, else this server's. */
    const prefill = async (
      path: string
    ): Promise<{ values: IFormValues; options: IKernelOptions | null }> => {
      const panel = notebooks?.find(p => p.context.path === path);
      if (panel?.context.model.dirty) {
        await panel.context.save();
      }
      let options: IKernelOptions | null = null;
      try {
        options = switcher ? await switcher.loadOptions() : null;
      } catch {
        options = switcher?.options ?? null;
      }
      const saved = panel
        ? notebookChoice(panel)
        : isNotebookPath(path)
          ? await savedChoice(path)
          : {};
      return {
        options,
        values: {
          path,
          image: allowedOr(
            saved.image,
            options?.server.image,
            options?.images.map(i => i.id)
          ),
          size: allowedOr(
            saved.size,
            options?.server.size,
            options?.sizes.map(s => s.id)
          ),
          workers: 1,
          parameters: '',
          args: '',
          maxRetries: 0,
          timeout: ''
        }
      };
    };

    /** `metadata.studiohub` of a notebook that is not open, read from the server. */
    const savedChoice = async (path: string): Promise<Partial<IChoice>> => {
      try {
        const model = await app.serviceManager.contents.get(path, {
          content: true
        });
        const saved = model.content?.metadata?.studiohub;
        return saved && typeof saved === 'object' ? saved : {};
      } catch {
        return {};
      }
    };

    const openJob = (id: string): MainAreaWidget<JobView> => {
      const existing = tabs.find(w => w.content.jobId === id);
      if (existing) {
        shell.activateById(existing.id);
        void existing.content.refresh();
        return existing;
      }
      const view = new JobView({
        jobId: id,
        model,
        kernelOptions: () => switcher?.options ?? null,
        actions: {
          cancel: jobId =>
            commands.execute(CommandIDs.cancelTrainingJob, { id: jobId }),
          rerun: jobId =>
            commands.execute(CommandIDs.rerunTrainingJob, { id: jobId }),
          delete: jobId =>
            commands.execute(CommandIDs.deleteTrainingJob, { id: jobId }),
          tensorboard: job =>
            commands.execute(CommandIDs.openTensorBoard, {
              folders: [`~/${job.dirs.tensorboard}`]
            }),
          outputs: job => showFolder(job.dirs.outputs),
          deploy: job =>
            commands.execute(CommandIDs.deployEndpoint, { job: job.id }),
          canDeploy: job =>
            commands.hasCommand(CommandIDs.deployEndpoint) &&
            outputsHoldModel(job)
        }
      });
      const widget = new MainAreaWidget({ content: view });
      // MainAreaWidget names its content "main area content": keep the job's name.
      view.node.setAttribute('aria-label', `Training job ${id}`);
      widget.id = `studiohub-training-job-${id}`;
      widget.title.icon = trainingIcon;
      widget.title.closable = true;
      void tabs.add(widget);
      shell.add(widget, 'main');
      shell.activateById(widget.id);
      return widget;
    };

    /** Whether a job's outputs hold what Deploy as Endpoint… takes: a folder or a model file. */
    const outputsHoldModel = async (job: IJob): Promise<boolean> => {
      try {
        const listing = await app.serviceManager.contents.get(
          job.dirs.outputs,
          { content: true }
        );
        const items: Contents.IModel[] = Array.isArray(listing.content)
          ? listing.content
          : [];
        return items.some(
          item => item.type === 'directory' || isModelFile(item.path)
        );
      } catch {
        return false; // no outputs folder: nothing to deploy
      }
    };

    const showFolder = async (folder: string) => {
      if (!fileBrowser) {
        return;
      }
      try {
        await fileBrowser.model.cd(`/${folder}`);
        shell.activateById(fileBrowser.id);
      } catch (error) {
        await showErrorMessage('Cannot open the outputs', errorText(error));
      }
    };

    commands.addCommand(CommandIDs.runTrainingJob, {
      label: args =>
        args.from === 'toolbar' ? 'Run as Job' : 'Run as Training Job…',
      caption:
        'Run this notebook or script as a training job on an image and size of your choice',
      icon: args => (args.from === 'palette' ? undefined : trainingIcon),
      execute: async args => {
        const path = targetPath(args);
        if (!isNotebookPath(path) && !isScriptPath(path)) {
          await showErrorMessage(
            'Nothing to run',
            'Open a notebook or a .py file (or select one in the file browser) and choose Run as Training Job… again.'
          );
          return;
        }
        const { values, options } = await prefill(path as string);
        const form = new JobFormModel(model, values);
        const answer = await showDialog({
          title: `Run ${values.path.split('/').pop()} as a training job`,
          body: new JobForm(form, options),
          buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })],
          focusNodeSelector: 'select, input'
        });
        if (!answer.button.accept) {
          return;
        }
        try {
          const spec = answer.value ?? form.spec();
          const job = await model.submit(spec);
          Notification.success(
            `Training job ${job.id} submitted (${job.status})`,
            {
              autoClose: 3000
            }
          );
          openJob(job.id);
        } catch (error) {
          await showErrorMessage(
            'Cannot run the training job',
            errorText(error)
          );
        }
      }
    });

    commands.addCommand(CommandIDs.openTrainingJob, {
      label: 'Open Training Job',
      execute: args => openJob(args.id as string)
    });

    commands.addCommand(CommandIDs.cancelTrainingJob, {
      label: 'Cancel Training Job…',
      execute: async args => {
        const id = args.id as string;
        const name = model.find(id)?.name ?? id;
        const answer = await showDialog({
          title: `Cancel the training job ${name}?`,
          body: 'Its replicas are stopped now; what it wrote so far (outputs, checkpoints, logs) is kept.',
          buttons: [
            Dialog.cancelButton({ label: 'Keep running' }),
            Dialog.warnButton({ label: 'Cancel job' })
          ]
        });
        if (!answer.button.accept) {
          return;
        }
        try {
          await model.cancel(id);
        } catch (error) {
          await showErrorMessage(`Cannot cancel ${name}`, errorText(error));
        }
        tabs.forEach(w => {
          if (w.content.jobId === id) {
            void w.content.refresh();
          }
        });
      }
    });

    commands.addCommand(CommandIDs.deleteTrainingJob, {
      label: 'Delete Training Job…',
      caption: 'Forget a finished job: its logs and code snapshot',
      execute: async args => {
        const id = args.id as string;
        const job = model.find(id);
        const name = job?.name ?? id;
        const folder = `~/${job?.dirs.home ?? `studiohub-jobs/${id}`}`;
        const answer = await showDialog({
          title: `Delete the training job ${name}?`,
          body: `Its logs, events and code snapshot are deleted for good. Its outputs, checkpoints and TensorBoard files stay in ${folder} unless you tick the box.`,
          checkbox: {
            label: `Also delete ${folder} (outputs, checkpoints, TensorBoard files)`,
            checked: false
          },
          buttons: [
            Dialog.cancelButton(),
            Dialog.warnButton({ label: 'Delete' })
          ]
        });
        if (!answer.button.accept) {
          return;
        }
        try {
          await model.delete(id, answer.isChecked === true);
        } catch (error) {
          await showErrorMessage(`Cannot delete ${name}`, errorText(error));
          return;
        }
        tabs.forEach(w => {
          if (w.content.jobId === id) {
            w.dispose();
          }
        });
      }
    });

    commands.addCommand(CommandIDs.rerunTrainingJob, {
      label: 'Run Training Job Again',
      caption: 'Submit the same spec as a new job',
      execute: async args => {
        try {
          const job: IJob = await model.rerun(args.id as string);
          openJob(job.id);
        } catch (error) {
          await showErrorMessage('Cannot run the job again', errorText(error));
        }
      }
    });

    if (notebooks) {
      notebooks.widgetAdded.connect((_, panel: NotebookPanel) => {
        const button = new ToolbarButton({
          icon: runIcon,
          label: 'Run as Job',
          tooltip: 'Run this notebook as a training job',
          onClick: () => {
            void commands.execute(CommandIDs.runTrainingJob, {
              path: panel.context.path,
              from: 'toolbar'
            });
          }
        });
        button.addClass('jp-StudioHub-RunJobButton');
        if (!panel.toolbar.insertBefore('spacer', 'studiohubRunJob', button)) {
          panel.toolbar.addItem('studiohubRunJob', button);
        }
      });
    }
    for (const fileType of ['notebook', 'python']) {
      app.contextMenu.addItem({
        command: CommandIDs.runTrainingJob,
        args: { from: 'filebrowser' },
        selector: `.jp-DirListing-item[data-file-type="${fileType}"]`,
        rank: 12
      });
    }
    if (palette) {
      palette.addItem({
        command: CommandIDs.runTrainingJob,
        category: CATEGORY,
        args: { from: 'palette' }
      });
    }
    if (restorer) {
      void restorer.restore(tabs, {
        command: CommandIDs.openTrainingJob,
        args: widget => ({ id: widget.content.jobId }),
        name: widget => widget.content.jobId
      });
    }
    return model;
  }
};

/** The query that opens JupyterLab on the Training sidebar (studiohub/hubpages.py). */
const TRAINING_SIDEBAR_ROUTE = /[?&]studiohub-sidebar=training(?:[&#]|$)/;

/**
 * The Training sidebar: my jobs with their live status.
 */
const trainingPanelPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_IDS.trainingPanel,
  description: "A sidebar listing the user's training jobs.",
  autoStart: true,
  requires: [ITrainingModel],
  optional: [ILayoutRestorer, ICommandPalette, IRouter, ISwitcher],
  activate: (
    app: JupyterFrontEnd,
    model: ITrainingModel,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    router: IRouter | null,
    switcher: ISwitcher | null
  ) => {
    // The catalog's labels for the rows (ids until they arrive; the list re-renders
    // on its next poll).
    if (switcher && !switcher.options) {
      void switcher.loadOptions().catch(() => undefined);
    }
    const panel = new TrainingPanel({
      model,
      commands: app.commands,
      kernelOptions: () => switcher?.options ?? null
    });
    panel.title.icon = trainingIcon;
    addSidebar(app, panel, {
      rank: 620,
      command: CommandIDs.showTrainingJobs,
      label: 'Show Training Jobs',
      category: CATEGORY,
      restorer,
      palette
    });
    if (router) {
      // The hub's home page links to lab?studiohub-sidebar=training: open on the jobs.
      router.register({
        command: CommandIDs.showTrainingJobs,
        pattern: TRAINING_SIDEBAR_ROUTE
      });
    }
  }
};

export const trainingPlugins: JupyterFrontEndPlugin<any>[] = [
  trainingPlugin,
  trainingPanelPlugin
];
