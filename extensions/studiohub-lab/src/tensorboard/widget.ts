import { IFrame } from '@jupyterlab/apputils';
import { Panel, Widget } from '@lumino/widgets';

import { ITensorBoard, ITensorBoardModel } from '../tokens';
import { boardTitle } from './model';

/**
 * One TensorBoard in a main-area tab: progress while it starts, then the board, or
 * TensorBoard's own error text. Restored tabs start (or reuse) it again.
 */
export class TensorBoardView extends Panel {
  constructor(options: TensorBoardView.IOptions) {
    super();
    this.folders = options.folders;
    this._model = options.model;
    this.addClass('jp-StudioHub-TensorBoard');
    this.title.label = boardTitle(this.folders);
    this.title.caption = this.folders.join('\n');

    this._status = new Widget();
    this._status.addClass('jp-StudioHub-TensorBoard-status');
    this._status.node.setAttribute('role', 'status');
    this._status.node.setAttribute('aria-live', 'polite');
    this._frame = new IFrame({
      sandbox: [
        'allow-scripts',
        'allow-same-origin',
        'allow-forms',
        'allow-popups',
        'allow-downloads',
        'allow-modals'
      ]
    });
    this._frame.addClass('jp-StudioHub-TensorBoard-frame');
    this._frame.node
      .querySelector('iframe')
      ?.setAttribute('title', this.title.label);
    this._frame.hide();
    this.addWidget(this._status);
    this.addWidget(this._frame);
  }

  /**
   * The folders this tab shows (paths as the file browser names them).
   */
  readonly folders: string[];

  /**
   * The TensorBoard, once the server has answered.
   */
  get board(): ITensorBoard | null {
    return this._board;
  }

  /**
   * Start or reuse the TensorBoard, then show it.
   */
  async start(): Promise<void> {
    const started = Date.now();
    this._showProgress('Starting TensorBoard…');
    const timer = window.setInterval(() => {
      const seconds = Math.round((Date.now() - started) / 1000);
      this._showProgress(`Starting TensorBoard… ${seconds} s`);
    }, 1000);
    try {
      let board = await this._model.open(this.folders);
      this._board = board;
      if (board.status === 'starting') {
        board = await this._model.waitReady(board.id);
        this._board = board;
      }
      if (board.status === 'running') {
        this._showBoard(board);
      } else {
        this._showError(
          board.error || `TensorBoard is ${board.status}`,
          board.status
        );
      }
    } catch (error) {
      this._showError((error as Error).message, 'error');
    } finally {
      window.clearInterval(timer);
    }
  }

  /**
   * Reload the board's page (after its TensorBoard restarted).
   */
  reloadFrame(): void {
    if (this._board && this._board.status === 'running') {
      this._showBoard(this._board);
    }
  }

  private _showProgress(text: string): void {
    this._frame.hide();
    this._status.show();
    this._status.node.dataset.state = 'starting';
    this._status.node.innerHTML = '';
    const spinner = document.createElement('div');
    spinner.className = 'jp-StudioHub-TensorBoard-spinner';
    spinner.setAttribute('aria-hidden', 'true');
    const label = document.createElement('p');
    label.textContent = text;
    const folders = document.createElement('p');
    folders.className = 'jp-StudioHub-TensorBoard-folders';
    folders.textContent = this.folders.join(', ');
    this._status.node.append(spinner, label, folders);
  }

  private _showError(text: string, state: string): void {
    this._frame.hide();
    this._status.show();
    this._status.node.dataset.state = state;
    this._status.node.innerHTML = '';
    const heading = document.createElement('h2');
    heading.textContent = 'TensorBoard could not start';
    const details = document.createElement('pre');
    details.setAttribute('aria-label', 'TensorBoard error');
    details.textContent = text;
    this._status.node.append(heading, details);
  }

  private _showBoard(board: ITensorBoard): void {
    this._status.hide();
    this._status.node.dataset.state = 'running';
    // board.url is an absolute path on this server (the hub's prefix included).
    this._frame.url = '';
    window.requestAnimationFrame(() => {
      this._frame.url = board.url;
    });
    this._frame.show();
  }

  private _board: ITensorBoard | null = null;
  private _frame: IFrame;
  private _model: ITensorBoardModel;
  private _status: Widget;
}

export namespace TensorBoardView {
  export interface IOptions {
    folders: string[];
    model: ITensorBoardModel;
  }
}
