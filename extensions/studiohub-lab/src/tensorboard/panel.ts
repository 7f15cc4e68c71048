import { CommandRegistry } from '@lumino/commands';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import { makeButton } from '../components/button';
import { CommandIDs, ITensorBoard, ITensorBoardModel } from '../tokens';
import { formatDuration } from './model';

/**
 * The TensorBoard sidebar: the user's TensorBoards with their folders and uptime, and
 * Open, Reload and Stop for each. Renders the model; owns no state.
 */
export class TensorBoardPanel extends Widget {
  constructor(options: TensorBoardPanel.IOptions) {
    super();
    this._model = options.model;
    this._commands = options.commands;
    this.id = 'studiohub-tensorboards';
    this.addClass('jp-StudioHub-TensorBoardPanel');
    this.title.caption = 'TensorBoards';
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'TensorBoards');

    const header = document.createElement('header');
    const heading = document.createElement('h2');
    heading.textContent = 'TensorBoards';
    const openButton = makeButton({
      text: 'Open…',
      label: 'Open a folder in TensorBoard',
      title: 'Open a folder in TensorBoard',
      onClick: () => this._commands.execute(CommandIDs.openTensorBoard, {})
    });
    header.append(heading, openButton);
    this._list = document.createElement('ul');
    this._list.setAttribute('aria-label', 'Running TensorBoards');
    this.node.append(header, this._list);
    this._model.changed.connect(this._render, this);
    this._render();
  }

  protected onAfterShow(): void {
    void this._model.refresh().catch(() => undefined);
  }

  private _render(): void {
    this._list.innerHTML = '';
    const boards = this._model.tensorboards.filter(b =>
      ['starting', 'running', 'failed'].includes(b.status)
    );
    if (boards.length === 0) {
      const empty = document.createElement('li');
      empty.className = 'jp-StudioHub-TensorBoardPanel-empty';
      empty.textContent =
        'No TensorBoard is running. Right-click a folder in the file browser and choose "Open in TensorBoard".';
      this._list.append(empty);
      return;
    }
    for (const board of boards) {
      this._list.append(this._item(board));
    }
  }

  private _item(board: ITensorBoard): HTMLLIElement {
    const item = document.createElement('li');
    item.className = 'jp-StudioHub-TensorBoardPanel-item';
    item.dataset.status = board.status;
    const label = board.folders.join(', ');
    item.setAttribute('aria-label', `TensorBoard for ${label}`);

    const folders = document.createElement('div');
    folders.className = 'jp-StudioHub-TensorBoardPanel-folders';
    folders.textContent = label;
    folders.title = board.folders.join('\n');
    const status = document.createElement('div');
    status.className = 'jp-StudioHub-TensorBoardPanel-status';
    status.textContent =
      board.status === 'running'
        ? `running · up ${formatDuration(board.uptime)}`
        : board.status;
    if (board.error) {
      status.title = board.error;
    }

    const actions = document.createElement('div');
    actions.className = 'jp-StudioHub-TensorBoardPanel-actions';
    actions.append(
      this._action('Open', CommandIDs.openTensorBoard, label, {
        folders: board.folders
      }),
      this._action('Reload', CommandIDs.reloadTensorBoard, label, {
        id: board.id
      }),
      this._action('Stop', CommandIDs.stopTensorBoard, label, { id: board.id })
    );
    item.append(folders, status, actions);
    return item;
  }

  /** A board's button: `Stop` reads "Stop TensorBoard for <folders>" aloud. */
  private _action(
    text: string,
    command: CommandIDs,
    folders: string,
    args: ReadonlyPartialJSONObject
  ): HTMLButtonElement {
    return makeButton({
      text,
      label: `${text} TensorBoard for ${folders}`,
      onClick: () => this._commands.execute(command, args)
    });
  }

  private _commands: CommandRegistry;
  private _list: HTMLUListElement;
  private _model: ITensorBoardModel;
}

export namespace TensorBoardPanel {
  export interface IOptions {
    model: ITensorBoardModel;
    commands: CommandRegistry;
  }
}
