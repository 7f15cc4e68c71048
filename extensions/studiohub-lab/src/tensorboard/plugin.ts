import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  showErrorMessage,
  WidgetTracker
} from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { FileDialog, IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { addSidebar } from '../components/sidebar';
import { CommandIDs, ITensorBoardModel, PLUGIN_IDS } from '../tokens';
import { closeSettingsPaneByDefault, TensorBoardModel } from './model';
import { TensorBoardPanel } from './panel';
import { TensorBoardView } from './widget';
import tensorboardSvg from '../../style/icons/tensorboard.svg';

export const tensorboardIcon = new LabIcon({
  name: 'studiohub:tensorboard',
  svgstr: tensorboardSvg
});

/**
 * Run an action; a failure is a dialog with the server's message under `title`.
 */
async function explainFailure(
  title: string,
  action: () => Promise<void>
): Promise<void> {
  try {
    await action();
  } catch (error) {
    await showErrorMessage(title, (error as Error).message);
  }
}

/**
 * TensorBoard in main-area tabs: "Open in TensorBoard" on folders in the file
 * browser and in the command palette; tabs survive moves, splits and reloads.
 */
const tensorboardPlugin: JupyterFrontEndPlugin<ITensorBoardModel> = {
  id: PLUGIN_IDS.tensorboard,
  description: 'Open folders in TensorBoard, inside JupyterLab.',
  autoStart: true,
  provides: ITensorBoardModel,
  optional: [
    ICommandPalette,
    ILayoutRestorer,
    ISettingRegistry,
    IDefaultFileBrowser,
    IDocumentManager
  ],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    fileBrowser: IDefaultFileBrowser | null,
    docManager: IDocumentManager | null
  ): ITensorBoardModel => {
    const model = new TensorBoardModel();
    // Before any board loads, in a tab or a notebook's %tensorboard output (same origin).
    closeSettingsPaneByDefault();
    const tracker = new WidgetTracker<MainAreaWidget<TensorBoardView>>({
      namespace: 'studiohub-tensorboard'
    });
    let reuseTab = true;

    if (settingRegistry) {
      void settingRegistry.load(PLUGIN_IDS.tensorboard).then(settings => {
        const apply = () => {
          model.refreshInterval = settings.get('refreshInterval')
            .composite as number;
          reuseTab = settings.get('reuseTab').composite as boolean;
        };
        apply();
        settings.changed.connect(apply);
      });
    }

    const selectedFolders = (): string[] => {
      if (!fileBrowser) {
        return [];
      }
      return Array.from(fileBrowser.selectedItems())
        .filter(item => item.type === 'directory')
        .map(item => item.path || '.');
    };

    const openView = (folders: string[]) => {
      const view = new TensorBoardView({ folders, model });
      const widget = new MainAreaWidget({ content: view });
      widget.id = `studiohub-tensorboard-${Date.now()}`;
      widget.title.icon = tensorboardIcon;
      widget.title.closable = true;
      void tracker.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
      void view.start();
      return widget;
    };

    app.commands.addCommand(CommandIDs.openTensorBoard, {
      label: args =>
        args.from === 'filebrowser'
          ? 'Open in TensorBoard'
          : 'Open Folder in TensorBoard…',
      caption:
        'Open folders in TensorBoard (several folders are compared as named runs)',
      icon: args => (args.from === 'filebrowser' ? tensorboardIcon : undefined),
      execute: async args => {
        let folders = (args.folders as string[] | undefined) ?? [];
        if (folders.length === 0 && args.from === 'filebrowser') {
          folders = selectedFolders();
        }
        if (folders.length === 0 && docManager) {
          const picked = await FileDialog.getExistingDirectory({
            manager: docManager,
            title: 'Open in TensorBoard'
          });
          if (!picked.button.accept || !picked.value?.length) {
            return;
          }
          folders = picked.value.map(item => item.path || '.');
        }
        if (folders.length === 0) {
          return;
        }
        if (args.restore) {
          // A restored tab: same folders as before the reload.
          return openView(folders);
        }
        try {
          const board = await model.open(folders);
          const existing = tracker.find(w => w.content.board?.id === board.id);
          if (existing && reuseTab) {
            app.shell.activateById(existing.id);
            return existing;
          }
          return openView(board.folders);
        } catch (error) {
          await showErrorMessage(
            'Cannot open TensorBoard',
            (error as Error).message
          );
        }
      }
    });

    app.commands.addCommand(CommandIDs.reloadTensorBoard, {
      label: 'Reload TensorBoard',
      caption: 'Restart this TensorBoard (same folders) and reload its tabs',
      execute: async args => {
        const id = args.id as string;
        await explainFailure('Cannot reload TensorBoard', async () => {
          const board = await model.restart(id);
          const ready =
            board.status === 'starting' ? await model.waitReady(id) : board;
          tracker.forEach(w => {
            if (w.content.board?.id === ready.id) {
              void w.content.start();
            }
          });
        });
      }
    });

    app.commands.addCommand(CommandIDs.stopTensorBoard, {
      label: 'Stop TensorBoard',
      caption: 'Stop this TensorBoard and free its memory',
      execute: async args => {
        const id = args.id as string;
        await explainFailure('Cannot stop TensorBoard', async () => {
          await model.stop(id);
          tracker.forEach(w => {
            if (w.content.board?.id === id) {
              w.dispose();
            }
          });
        });
      }
    });

    app.contextMenu.addItem({
      command: CommandIDs.openTensorBoard,
      args: { from: 'filebrowser' },
      selector: '.jp-DirListing-item[data-isdir="true"]',
      rank: 10
    });
    if (palette) {
      palette.addItem({
        command: CommandIDs.openTensorBoard,
        category: 'TensorBoard'
      });
    }
    if (restorer) {
      void restorer.restore(tracker, {
        command: CommandIDs.openTensorBoard,
        args: widget => ({ folders: widget.content.folders, restore: true }),
        name: widget => widget.content.folders.join('\n')
      });
    }
    return model;
  }
};

/**
 * The TensorBoard sidebar: running TensorBoards with Open, Reload and Stop.
 */
const tensorboardPanelPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_IDS.tensorboardPanel,
  description: "A sidebar listing the user's running TensorBoards.",
  autoStart: true,
  requires: [ITensorBoardModel],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    model: ITensorBoardModel,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const panel = new TensorBoardPanel({ model, commands: app.commands });
    panel.title.icon = tensorboardIcon;
    addSidebar(app, panel, {
      rank: 600,
      command: CommandIDs.showTensorBoards,
      label: 'Show Running TensorBoards',
      category: 'TensorBoard',
      restorer,
      palette
    });
  }
};

export const tensorboardPlugins: JupyterFrontEndPlugin<any>[] = [
  tensorboardPlugin,
  tensorboardPanelPlugin
];
