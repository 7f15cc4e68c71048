import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Clipboard,
  Dialog,
  ICommandPalette,
  Notification,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon, ToolbarButton } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';

import { addSidebar } from '../components/sidebar';
import shareSvg from '../../style/icons/share.svg';
import { keepKernelInfoClean } from './kernelInfo';
import { ShareForm, ShareLinkBody } from './dialog';
import {
  basename,
  errorText,
  isNotebookPath,
  liveSharesNamed,
  shareLink,
  sourceOfShare
} from './logic';
import { SharingModel } from './model';
import { SharedPanel } from './panel';
import { IShare, ISharingModel, PLUGIN_IDS, CommandIDs } from '../tokens';

export const shareIcon = new LabIcon({
  name: 'studiohub:share',
  svgstr: shareSvg
});

const CATEGORY = 'Sharing';

/**
 * Share… on notebooks (toolbar, file browser, palette) and the commands on shares;
 * provides the sharing model to the Shared sidebar.
 */
const sharingPlugin: JupyterFrontEndPlugin<ISharingModel> = {
  id: PLUGIN_IDS.sharing,
  description:
    'Share notebooks with your domain by link: snapshot, preview, copy.',
  autoStart: true,
  provides: ISharingModel,
  optional: [
    INotebookTracker,
    ICommandPalette,
    IDefaultFileBrowser,
    IDocumentManager
  ],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker | null,
    palette: ICommandPalette | null,
    fileBrowser: IDefaultFileBrowser | null,
    docManager: IDocumentManager | null
  ): ISharingModel => {
    const model = new SharingModel();
    const origin = window.location.origin;
    const { commands } = app;

    /** The notebook the command is about: its argument, the file browser, or the current one. */
    const targetPath = (args: Record<string, unknown>): string | null => {
      if (typeof args.path === 'string') {
        return args.path;
      }
      if (typeof args.shareId === 'string') {
        const selected = fileBrowser
          ? Array.from(fileBrowser.selectedItems()).map(i => i.path)
          : [];
        return sourceOfShare(
          model.pathOf(args.shareId),
          model.find(args.shareId)?.name,
          [tracker?.currentWidget?.context.path, ...selected]
        );
      }
      if (args.from === 'filebrowser' && fileBrowser) {
        const item = Array.from(fileBrowser.selectedItems()).find(i =>
          isNotebookPath(i.path)
        );
        return item?.path ?? null;
      }
      return tracker?.currentWidget?.context.path ?? null;
    };

    const saveIfOpen = async (path: string) => {
      const panel = tracker?.find(p => p.context.path === path);
      if (panel && panel.context.model.dirty) {
        await panel.context.save();
      }
    };

    const share = async (path: string, selected: string | null) => {
      const name = basename(path);
      let domains;
      try {
        await saveIfOpen(path);
        [domains] = await Promise.all([
          model.domains(),
          model.refresh().catch(() => undefined)
        ]);
      } catch (error) {
        await showErrorMessage(`Cannot share ${name}`, errorText(error));
        return;
      }
      if (domains.length === 0) {
        await showErrorMessage(
          `Cannot share ${name}`,
          'You are not in any domain, so there is nobody to share with: ask an administrator to add you to your team’s domain (a JupyterHub group).'
        );
        return;
      }
      const existing = liveSharesNamed(model.mine, name);
      const form = new ShareForm({ path, domains, existing, selected });
      const answer = await showDialog({
        title: `Share ${name}`,
        body: form,
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Share' })],
        focusNodeSelector: 'select, input'
      });
      if (!answer.button.accept || !answer.value) {
        return;
      }
      const request = answer.value;
      let result: IShare;
      try {
        const sharing = model.share(request);
        Notification.promise(
          sharing.then(() => null),
          {
            pending: { message: `Sharing ${name}…`, options: {} },
            success: {
              message: () => `${name} is shared`,
              options: { autoClose: 2000 }
            },
            error: {
              message: () => `Sharing ${name} failed`,
              options: { autoClose: 3000 }
            }
          }
        );
        result = await sharing;
      } catch (error) {
        await showErrorMessage(`Cannot share ${name}`, errorText(error));
        return;
      }
      await showDialog({
        title: request.shareId ? 'New version published' : 'Notebook shared',
        body: new ShareLinkBody(
          shareLink(origin, result.url),
          result,
          !!request.shareId
        ),
        buttons: [Dialog.okButton({ label: 'Done' })]
      });
    };

    commands.addCommand(CommandIDs.shareNotebook, {
      label: args =>
        args.from === 'filebrowser' || args.from === 'toolbar'
          ? 'Share…'
          : 'Share Notebook…',
      caption:
        'Share a snapshot of this notebook with one of your domains, by link',
      icon: args => (args.from === 'palette' ? undefined : shareIcon),
      execute: async args => {
        const path = targetPath(args);
        if (typeof args.shareId === 'string' && !path) {
          const name = model.find(args.shareId)?.name ?? 'the notebook';
          await showErrorMessage(
            'Which notebook?',
            `This browser does not know where ${name} was shared from: open it (or select it in the file browser) and choose New version… again.`
          );
          return;
        }
        if (!isNotebookPath(path)) {
          await showErrorMessage(
            'Nothing to share',
            'Open a notebook (or select one in the file browser) and choose Share… again.'
          );
          return;
        }
        await share(
          path as string,
          typeof args.shareId === 'string' ? args.shareId : null
        );
      }
    });

    const linkOf = (id: string): string | null => {
      const found = model.find(id);
      return found ? shareLink(origin, found.url) : null;
    };

    commands.addCommand(CommandIDs.openShare, {
      label: 'Open Shared Notebook Preview',
      caption: 'Open the read-only preview in a new browser tab',
      execute: args => {
        const link = linkOf(args.id as string);
        if (link) {
          window.open(link, '_blank', 'noopener');
        }
      }
    });

    commands.addCommand(CommandIDs.copyShareLink, {
      label: 'Copy Link to Shared Notebook',
      execute: args => {
        const link = linkOf(args.id as string);
        if (link) {
          Clipboard.copyToSystem(link);
          Notification.success(`Link copied: ${link}`, { autoClose: 4000 });
        }
      }
    });

    commands.addCommand(CommandIDs.copyShare, {
      label: 'Copy Shared Notebook to My Workspace',
      caption: 'Save a copy in your home and open it',
      execute: async args => {
        const id = args.id as string;
        const title = model.find(id)?.title ?? 'the notebook';
        try {
          const path = await model.copy(id);
          Notification.success(`Copied ${title} to ${path}`, {
            autoClose: 5000
          });
          if (docManager) {
            docManager.openOrReveal(path);
          }
        } catch (error) {
          await showErrorMessage(`Cannot copy ${title}`, errorText(error));
        }
      }
    });

    commands.addCommand(CommandIDs.revokeShare, {
      label: 'Revoke Shared Notebook Link…',
      execute: async args => {
        const id = args.id as string;
        const found = model.find(id);
        const title = found?.title ?? 'this notebook';
        const answer = await showDialog({
          title: `Revoke the link to ${title}?`,
          body: `Nobody${found ? ` in ${found.domain_name}` : ''} can open it any more, and its snapshots are deleted. Copies people already made stay theirs. This cannot be undone.`,
          buttons: [
            Dialog.cancelButton(),
            Dialog.warnButton({ label: 'Revoke' })
          ]
        });
        if (!answer.button.accept) {
          return;
        }
        try {
          await model.revoke(id);
          Notification.info(`The link to ${title} is revoked.`, {
            autoClose: 4000
          });
        } catch (error) {
          await showErrorMessage(`Cannot revoke ${title}`, errorText(error));
        }
      }
    });

    if (tracker) {
      tracker.widgetAdded.connect((_, panel: NotebookPanel) => {
        // A copy from a share opens saved (JupyterLab's kernel bookkeeping aside).
        keepKernelInfoClean(panel);
        const button = new ToolbarButton({
          icon: shareIcon,
          label: 'Share',
          tooltip: 'Share a snapshot of this notebook with your domain',
          onClick: () => {
            void commands.execute(CommandIDs.shareNotebook, {
              path: panel.context.path,
              from: 'toolbar'
            });
          }
        });
        button.addClass('jp-StudioHub-ShareButton');
        if (!panel.toolbar.insertBefore('spacer', 'studiohubShare', button)) {
          panel.toolbar.addItem('studiohubShare', button);
        }
      });
    }
    app.contextMenu.addItem({
      command: CommandIDs.shareNotebook,
      args: { from: 'filebrowser' },
      selector: '.jp-DirListing-item[data-file-type="notebook"]',
      rank: 11
    });
    if (palette) {
      palette.addItem({
        command: CommandIDs.shareNotebook,
        category: CATEGORY,
        args: { from: 'palette' }
      });
    }
    return model;
  }
};

/**
 * The Shared sidebar: shared by me, shared with my domains, recently opened.
 */
const sharedPanelPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_IDS.sharedPanel,
  description: 'A sidebar of notebooks shared by and with the user.',
  autoStart: true,
  requires: [ISharingModel],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    model: ISharingModel,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const panel = new SharedPanel({
      model,
      commands: app.commands,
      origin: window.location.origin
    });
    panel.title.icon = shareIcon;
    addSidebar(app, panel, {
      rank: 650,
      command: CommandIDs.showShared,
      label: 'Show Shared Notebooks',
      category: CATEGORY,
      restorer,
      palette
    });
    // While the sidebar is open, notice new shares without a click on Refresh.
    const poll = new Poll({
      factory: () =>
        panel.isVisible
          ? model.refresh().catch(() => undefined)
          : Promise.resolve(),
      frequency: { interval: 60000, backoff: true, max: 300000 },
      standby: 'when-hidden',
      name: 'studiohub:shared'
    });
    panel.disposed.connect(() => poll.dispose());
  }
};

export const sharingPlugins: JupyterFrontEndPlugin<any>[] = [
  sharingPlugin,
  sharedPanelPlugin
];
