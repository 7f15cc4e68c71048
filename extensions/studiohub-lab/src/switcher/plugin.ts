import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  ISessionContext,
  Notification,
  showErrorMessage
} from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, ServerConnection, Session } from '@jupyterlab/services';

import { CommandIDs, PLUGIN_IDS } from '../tokens';
import {
  getKernelOptions,
  getKernelReport,
  IChoice,
  IKernelOptions,
  IKernelReport,
  nearestChoice,
  recordChoice,
  restartServer,
  startRefusal
} from './model';
import { pickChoice } from './picker';
import { KernelChoiceItem } from './toolbar';

const METADATA_KEY = 'studiohub';
/** JupyterLab's document manager command that saves every unsaved document. */
const SAVE_ALL = 'docmanager:save-all';

/**
 * Restart a notebook's kernel as `kernelName` through its session, not its session
 * context: a start refused as the kernel is placed (the room went after the choice was
 * checked) then leaves the old kernel connected with its state, and its reason goes to
 * our notification, not to Lab's "Error Starting Kernel" dialog (which would also drop
 * the session). The context is first told the new name (the kernel id wins on the
 * server, so nothing restarts), since its displays read that name on a kernel change.
 */
async function changeThroughSession(
  context: ISessionContext,
  session: Session.ISessionConnection,
  old: Kernel.IKernelConnection,
  kernelName: string
): Promise<void> {
  await context.changeKernel({ id: old.id, name: kernelName });
  try {
    await session.changeKernel({ name: kernelName });
  } catch (error) {
    if (
      error instanceof ServerConnection.ResponseError &&
      !session.isDisposed &&
      session.kernel?.id === old.id
    ) {
      // The server answered and kept the old kernel: its name goes back with it.
      await context
        .changeKernel({ id: old.id, name: old.name })
        .catch(() => null);
    } else {
      // No answer, or the session moved on: take the server's word for what runs.
      await context.sessionManager.refreshRunning().catch(() => undefined);
    }
    throw new Error(startRefusal((error as Error).message ?? String(error)));
  }
}

/**
 * One-click image and size per notebook: the toolbar item, the picker, the commands,
 * and notifications when a kernel dies for memory or a saved choice cannot run here.
 */
export const switcherPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_IDS.switcher,
  description:
    "Choose each notebook's image and size; restart only that notebook's kernel.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ) => {
    let options: IKernelOptions | null = null;
    const items = new WeakMap<NotebookPanel, KernelChoiceItem>();
    const loadOptions = async (replacing?: string) => {
      options = await getKernelOptions(replacing);
      return options;
    };

    const savedChoice = (panel: NotebookPanel): IChoice | null => {
      const saved = panel.content.model?.getMetadata(METADATA_KEY) as
        Partial<IChoice> | undefined;
      return saved?.image && saved?.size
        ? { image: saved.image, size: saved.size }
        : null;
    };

    const switchTo = async (panel: NotebookPanel, choice: IChoice) => {
      const context = panel.sessionContext;
      // The server may have forgotten this notebook's kernel (it died for good, or was
      // shut down elsewhere): resync first, so the change goes to what really runs.
      await context.sessionManager.refreshRunning().catch(() => undefined);
      const session = context.session;
      const kernel = session?.kernel;
      const old = kernel && kernel.status !== 'dead' ? kernel : null;
      const verdict = await recordChoice(context.path, choice, old?.id);
      const label = `${verdict.image_label} · ${verdict.size_label}`;
      items.get(panel)?.showPending(`Switching to ${label}…`);
      if (session && old && !session.isDisposed) {
        await changeThroughSession(context, session, old, verdict.kernel_name);
      } else {
        // No kernel, or none the server still has: start one the usual way.
        await context.changeKernel({ name: verdict.kernel_name });
      }
      panel.content.model?.setMetadata(METADATA_KEY, {
        image: verdict.image,
        size: verdict.size
      });
      return label;
    };

    const switching = new WeakSet<NotebookPanel>();
    const runSwitch = (panel: NotebookPanel, choice: IChoice) => {
      if (switching.has(panel)) {
        Notification.info(
          'This notebook is still switching: wait until it is done.',
          { autoClose: 3000 }
        );
        return Promise.resolve(null);
      }
      switching.add(panel);
      const done = switchTo(panel, choice).finally(() =>
        switching.delete(panel)
      );
      Notification.promise(done, {
        pending: { message: "Restarting this notebook's kernel…", options: {} },
        success: {
          message: (label: unknown) => `This notebook now runs on ${label}.`,
          options: { autoClose: 3000 }
        },
        error: {
          message: (error: unknown) =>
            `Cannot switch: ${(error as Error).message ?? error}`,
          options: { autoClose: false }
        }
      });
      return done.catch(() => {
        void items.get(panel)?.refresh();
        return null;
      });
    };

    app.commands.addCommand(CommandIDs.switchKernel, {
      label: 'Change Image and Size…',
      caption:
        "Run this notebook on another image and instance size (restarts this notebook's kernel only)",
      isEnabled: () => tracker.currentWidget !== null,
      execute: async args => {
        const panel = tracker.currentWidget;
        if (!panel) {
          return null;
        }
        const current = panel.sessionContext.session?.kernel?.id;
        let choice: IChoice | null = null;
        if (typeof args.image === 'string' && typeof args.size === 'string') {
          choice = { image: args.image, size: args.size };
        } else {
          let opts: IKernelOptions;
          try {
            opts = await loadOptions(current);
          } catch (error) {
            await showErrorMessage(
              'Cannot list images and sizes',
              (error as Error).message
            );
            return null;
          }
          const report = items.get(panel)?.report;
          const shown = savedChoice(panel) ?? {
            image: report?.choice.image ?? opts.server.image,
            size: report?.choice.size ?? opts.server.size
          };
          choice = await pickChoice(
            opts,
            shown,
            'Change Image and Size',
            "Restarts this notebook's kernel on the image and size you choose. Other notebooks keep running.",
            'Switch'
          );
        }
        return choice ? runSwitch(panel, choice) : null;
      }
    });

    app.commands.addCommand(CommandIDs.changeServer, {
      label: 'Change Server Image and Size…',
      caption:
        'Restart your whole server on another default image and size (every kernel stops)',
      execute: async () => {
        let opts: IKernelOptions;
        try {
          opts = await loadOptions();
        } catch (error) {
          await showErrorMessage(
            'Cannot list images and sizes',
            (error as Error).message
          );
          return;
        }
        const choice = await pickChoice(
          opts,
          opts.server,
          'Change Server Image and Size',
          'This restarts your whole server: EVERY running kernel stops and its variables are lost (open documents are saved first). To change one notebook only, use "Change Image and Size…" in its toolbar.',
          'Restart Server',
          true
        );
        if (!choice) {
          return;
        }
        try {
          // This page is about to leave for the hub's progress page: unsaved edits
          // would be lost with it.
          if (app.commands.hasCommand(SAVE_ALL)) {
            await app.commands.execute(SAVE_ALL);
          }
          const answer = await restartServer(choice);
          Notification.info('Restarting your server…', { autoClose: false });
          // This server asks the hub for the restart once it has answered; the hub's
          // page shows the progress.
          window.setTimeout(() => {
            window.location.href = answer.pending_url;
          }, 1500);
        } catch (error) {
          await showErrorMessage(
            'Cannot restart the server',
            (error as Error).message
          );
        }
      }
    });

    app.commands.addKeyBinding({
      command: CommandIDs.switchKernel,
      keys: ['Accel Shift K'],
      selector: '.jp-NotebookPanel'
    });
    if (palette) {
      for (const command of [
        CommandIDs.switchKernel,
        CommandIDs.changeServer
      ]) {
        palette.addItem({ command, category: 'StudioHub' });
      }
    }

    const explainFallback = async (
      panel: NotebookPanel,
      report: IKernelReport
    ) => {
      const fallback = report.fallback;
      if (!fallback) {
        return;
      }
      const opts = options ?? (await loadOptions().catch(() => null));
      const nearest = opts
        ? nearestChoice(opts, { image: fallback.image, size: fallback.size })
        : null;
      const sizeLabel = (id: string) =>
        opts?.sizes.find(s => s.id === id)?.label ?? id;
      const actions = [];
      if (nearest) {
        actions.push({
          label: `Use ${sizeLabel(nearest.size)}`,
          callback: () => void runSwitch(panel, nearest)
        });
      }
      actions.push({
        label: 'Choose…',
        callback: () => {
          app.shell.activateById(panel.id);
          void app.commands.execute(CommandIDs.switchKernel);
        }
      });
      Notification.warning(
        `${panel.title.label} runs on your server's size for now: ${fallback.reason}`,
        { autoClose: false, actions }
      );
    };

    // A notebook made elsewhere on an image this user may not use: its kernel cannot
    // start at all, so say why and offer the nearest allowed choice.
    const explainForeignImage = async (panel: NotebookPanel) => {
      const saved = savedChoice(panel);
      const opts = options ?? (await loadOptions().catch(() => null));
      if (!saved || !opts || opts.images.some(i => i.id === saved.image)) {
        return;
      }
      const nearest = nearestChoice(opts, saved);
      const label = (c: IChoice) =>
        `${opts.images.find(i => i.id === c.image)?.label ?? c.image} · ${
          opts.sizes.find(s => s.id === c.size)?.label ?? c.size
        }`;
      Notification.warning(
        `${panel.title.label} was made on image "${saved.image}", which your domains do not include.`,
        {
          autoClose: false,
          actions: nearest
            ? [
                {
                  label: `Use ${label(nearest)}`,
                  callback: () => void runSwitch(panel, nearest)
                }
              ]
            : []
        }
      );
    };

    const explainExit = async (panel: NotebookPanel, kernelId: string) => {
      // The server records why before the kernel is back; give it a moment.
      for (let attempt = 0; attempt < 10; attempt++) {
        await new Promise(resolve => setTimeout(resolve, 500));
        const report = await getKernelReport(kernelId).catch(() => null);
        const exit = report?.last_exit;
        if (exit && exit.time !== lastExit.get(kernelId)) {
          lastExit.set(kernelId, exit.time);
          Notification.error(`${panel.title.label}: ${exit.message}`, {
            autoClose: false,
            actions: [
              {
                label: 'Change size…',
                callback: () => {
                  app.shell.activateById(panel.id);
                  void app.commands.execute(CommandIDs.switchKernel);
                }
              }
            ]
          });
          return;
        }
      }
    };
    const lastExit = new Map<string, string>();

    tracker.widgetAdded.connect((_, panel) => {
      const item = new KernelChoiceItem(
        app.commands,
        CommandIDs.switchKernel,
        () => options
      );
      items.set(panel, item);
      panel.toolbar.insertAfter('spacer', 'studiohubKernelChoice', item);
      const context = panel.sessionContext;
      let checkedFallback: string | null = null;
      const update = () => {
        item.kernelId = context.session?.kernel?.id ?? null;
      };
      context.kernelChanged.connect(update);
      context.statusChanged.connect((_, status) => {
        const kernelId = context.session?.kernel?.id;
        if (!kernelId) {
          return;
        }
        if (status === 'autorestarting' || status === 'dead') {
          void explainExit(panel, kernelId);
        }
        if (status === 'idle' && checkedFallback !== kernelId) {
          checkedFallback = kernelId;
          void getKernelReport(kernelId)
            .then(report => explainFallback(panel, report))
            .catch(() => undefined);
        }
      });
      void context.ready.then(() => {
        update();
        void explainForeignImage(panel);
      });
      panel.disposed.connect(() => item.dispose());
    });
    void loadOptions().catch(() => null);
  }
};
