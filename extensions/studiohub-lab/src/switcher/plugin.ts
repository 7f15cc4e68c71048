import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  Notification,
  showErrorMessage
} from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import {
  CommandIDs,
  IChoice,
  IKernelNotice,
  IKernelOptions,
  INotebookKernel,
  ISwitcher,
  PLUGIN_IDS
} from '../tokens';
import { holdExecutionsDuringSwitch } from './executions';
import { showExitDialog } from './exitDialog';
import { NotebookKernelModel, STILL_SWITCHING, SwitcherModel } from './model';
import { pickChoice } from './picker';
import { NotebookSession } from './session';
import { addSwitchKeyBindings } from './shortcuts';
import { KernelChoiceItem } from './toolbar';

/** JupyterLab's document manager command that saves every unsaved document. */
const SAVE_ALL = 'docmanager:save-all';

/**
 * One-click image and size per notebook: provides the switcher model and wires it to
 * the commands, each notebook's toolbar item and notifications. The model holds the
 * state; the picker and the toolbar item render it.
 */
const switcherPlugin: JupyterFrontEndPlugin<ISwitcher> = {
  id: PLUGIN_IDS.switcher,
  description:
    "Choose each notebook's image and size; restart only that notebook's kernel.",
  autoStart: true,
  provides: ISwitcher,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ): ISwitcher => {
    const switcher = new SwitcherModel();
    holdExecutionsDuringSwitch(context => {
      const panel = tracker.find(p => p.sessionContext === context);
      const kernel = panel ? switcher.find(panel) : undefined;
      return kernel instanceof NotebookKernelModel ? kernel.switched : null;
    });
    addSwitchCommand(app, tracker, switcher);
    addChangeServerCommand(app, switcher);
    addSwitchKeyBindings(app.commands);
    if (palette) {
      for (const command of [
        CommandIDs.switchKernel,
        CommandIDs.changeServer
      ]) {
        palette.addItem({ command, category: 'StudioHub' });
      }
    }
    tracker.widgetAdded.connect((_, panel) =>
      attachToNotebook(app, switcher, panel)
    );
    void switcher.loadOptions().catch(() => null);
    return switcher;
  }
};

export const switcherPlugins: JupyterFrontEndPlugin<any>[] = [switcherPlugin];

/**
 * A new notebook: its kernel model follows the session, its toolbar shows it, its
 * notices become notifications.
 */
function attachToNotebook(
  app: JupyterFrontEnd,
  switcher: ISwitcher,
  panel: NotebookPanel
): void {
  const kernel = switcher.track(panel, new NotebookSession(panel));
  const item = new KernelChoiceItem({
    kernel,
    options: () => switcher.options,
    commands: app.commands
  });
  panel.toolbar.insertAfter('spacer', 'studiohubKernelChoice', item);
  const context = panel.sessionContext;
  const follow = () => {
    kernel.kernelId = context.session?.kernel?.id ?? null;
  };
  context.kernelChanged.connect(follow);
  context.statusChanged.connect((_, status) => {
    const kernelId = context.session?.kernel?.id;
    if (kernelId) {
      kernel.statusChanged(kernelId, status);
    }
  });
  reportReadyAfterAutorestart(context);
  kernel.notice.connect((_, notice) =>
    showNotice(app, switcher, panel, kernel, notice)
  );
  void context.ready.then(() => {
    follow();
    void kernel.checkSavedImage();
  });
  panel.disposed.connect(() => {
    item.dispose();
    kernel.dispose();
  });
}

/**
 * Switch a notebook with a notification that follows it; resolves to null when it was
 * refused (the notification says why, in the hub's words).
 */
function runSwitch(
  kernel: INotebookKernel,
  choice: IChoice
): Promise<string | null> {
  if (kernel.switching) {
    Notification.info(STILL_SWITCHING, { autoClose: 3000 });
    return Promise.resolve(null);
  }
  const done = kernel.switchTo(choice);
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
  return done.catch(() => null);
}

/**
 * Fetch the options for the picker, or say why they cannot be listed.
 */
async function optionsOrExplain(
  switcher: ISwitcher,
  replacing?: string
): Promise<IKernelOptions | null> {
  try {
    return await switcher.loadOptions(replacing);
  } catch (error) {
    await showErrorMessage(
      'Cannot list images and sizes',
      (error as Error).message
    );
    return null;
  }
}

function addSwitchCommand(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  switcher: ISwitcher
): void {
  app.commands.addCommand(CommandIDs.switchKernel, {
    label: 'Change Image and Size…',
    caption:
      "Run this notebook on another image and instance size (restarts this notebook's kernel only)",
    isEnabled: () => tracker.currentWidget !== null,
    execute: async args => {
      const panel = tracker.currentWidget;
      const kernel = panel ? switcher.find(panel) : undefined;
      if (!panel || !kernel) {
        return null;
      }
      // An image built since this page loaded is offered by the hub: fetch the kernel
      // specs now (Lab polls them only each minute) so that its name, logo and Launcher
      // card are there when the notebook runs on it.
      void app.serviceManager.kernelspecs.refreshSpecs().catch(() => undefined);
      if (typeof args.image === 'string' && typeof args.size === 'string') {
        return runSwitch(kernel, { image: args.image, size: args.size });
      }
      const current = panel.sessionContext.session?.kernel?.id;
      const options = await optionsOrExplain(switcher, current);
      if (!options) {
        return null;
      }
      const choice = await pickChoice(
        options,
        kernel.shownChoice(options),
        'Change Image and Size',
        "Restarts this notebook's kernel on the image and size you choose. Other notebooks keep running.",
        'Switch'
      );
      return choice ? runSwitch(kernel, choice) : null;
    }
  });
}

function addChangeServerCommand(
  app: JupyterFrontEnd,
  switcher: ISwitcher
): void {
  app.commands.addCommand(CommandIDs.changeServer, {
    label: 'Change Server Image and Size…',
    caption:
      'Restart your whole server on another default image and size (every kernel stops)',
    execute: async () => {
      const options = await optionsOrExplain(switcher);
      if (!options) {
        return;
      }
      const choice = await pickChoice(
        options,
        options.server,
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
        const answer = await switcher.restartServer(choice);
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
}

/**
 * Bring the status bar to "Idle" once the server has restarted a kernel that died (out
 * of memory, say). The new kernel says only "starting" on its own, and JupyterLab
 * ignores the busy/idle around its kernel-info requests (an untracked message type),
 * so the status stayed "Starting" until a cell ran; when the restart also dropped the
 * websocket, it stayed "Unknown" after the reconnection. An is-complete request, sent
 * once the connection is up, is answered with a tracked busy/idle pair and changes
 * nothing in the kernel.
 */
function reportReadyAfterAutorestart(
  context: NotebookPanel['sessionContext']
): void {
  let pending = false;
  const nudge = () => {
    const kernel = context.session?.kernel;
    if (
      pending &&
      kernel?.connectionStatus === 'connected' &&
      (kernel.status === 'starting' || kernel.status === 'unknown')
    ) {
      // Until the kernel says idle or busy: a request lost with a dropped websocket
      // is sent again after the reconnection.
      kernel.requestIsComplete({ code: '' }).catch(() => undefined);
    }
  };
  context.statusChanged.connect((_, status) => {
    if (status === 'autorestarting') {
      pending = true;
    } else if (status === 'idle' || status === 'busy') {
      pending = false;
    } else {
      nudge();
    }
  });
  context.connectionStatusChanged.connect(nudge);
}

/**
 * A notice of the kernel model as a notification, with the action that helps.
 */
function showNotice(
  app: JupyterFrontEnd,
  switcher: ISwitcher,
  panel: NotebookPanel,
  kernel: INotebookKernel,
  notice: IKernelNotice
): void {
  const name = kernel.session.name;
  const options = switcher.options;
  const imageLabel = (id: string) =>
    options?.images.find(i => i.id === id)?.label ?? id;
  const sizeLabel = (id: string) =>
    options?.sizes.find(s => s.id === id)?.label ?? id;
  const choose = (label: string) => ({
    label,
    callback: () => {
      app.shell.activateById(panel.id);
      void app.commands.execute(CommandIDs.switchKernel);
    }
  });
  const use = (nearest: IChoice | null, label: string) =>
    nearest ? [{ label, callback: () => void runSwitch(kernel, nearest) }] : [];

  if (notice.kind === 'exit') {
    // A dialog, not a notification: JupyterLab's own modal "Kernel Restarting" dialog
    // would cover a toast, and a toast cuts the reason short. This one replaces it.
    void showExitDialog(name, kernel.session.path, notice.exit).then(change => {
      if (change) {
        choose('Change size…').callback();
      }
    });
  } else if (notice.kind === 'fallback') {
    const { nearest } = notice;
    Notification.warning(
      `${name} runs on your server's size for now: ${notice.fallback.reason}`,
      {
        autoClose: false,
        actions: [
          ...use(nearest, `Use ${sizeLabel(nearest?.size ?? '')}`),
          choose('Choose…')
        ]
      }
    );
  } else {
    // A notebook made elsewhere on an image this user may not use: its kernel cannot
    // start at all, so say why and offer the nearest allowed choice.
    const { nearest } = notice;
    const label = nearest
      ? `${imageLabel(nearest.image)} · ${sizeLabel(nearest.size)}`
      : '';
    Notification.warning(
      `${name} was made on image "${notice.saved.image}", which your domains do not include.`,
      { autoClose: false, actions: use(nearest, `Use ${label}`) }
    );
  }
}
