import { Token } from '@lumino/coreutils';
import { ISignal } from '@lumino/signaling';

/**
 * Every command of the StudioHub extension: `studiohub:<verb>-<noun>`.
 */
export enum CommandIDs {
  openTensorBoard = 'studiohub:open-tensorboard',
  reloadTensorBoard = 'studiohub:reload-tensorboard',
  stopTensorBoard = 'studiohub:stop-tensorboard',
  showTensorBoards = 'studiohub:show-tensorboards',
  switchKernel = 'studiohub:switch-kernel',
  changeServer = 'studiohub:change-server'
}

/**
 * The plugin ids, also the keys of their settings (schema/<name>.json).
 */
export const PLUGIN_IDS = {
  tensorboard: '@studiohub/lab:tensorboard',
  tensorboardPanel: '@studiohub/lab:tensorboard-panel',
  switcher: '@studiohub/lab:switcher'
} as const;

/**
 * One run of a TensorBoard: a folder and the name TensorBoard shows for it.
 */
export interface ITensorBoardRun {
  name: string;
  folder: string;
}

/**
 * A TensorBoard as the server extension reports it.
 */
export interface ITensorBoard {
  id: string;
  folders: string[];
  runs: ITensorBoardRun[];
  status: 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';
  error: string | null;
  url: string;
  pid: number | null;
  isolation: string | null;
  started: number;
  uptime: number;
  idle: number;
}

/**
 * The user's TensorBoards: the list, and the actions on them.
 */
export interface ITensorBoardModel {
  /**
   * The last list fetched from the server.
   */
  readonly tensorboards: ReadonlyArray<ITensorBoard>;
  /**
   * Emitted when the list changes.
   */
  readonly changed: ISignal<ITensorBoardModel, ReadonlyArray<ITensorBoard>>;
  /**
   * Start (or reuse) the TensorBoard for these folders; resolves at once.
   */
  open(folders: string[]): Promise<ITensorBoard>;
  /**
   * Resolve once the TensorBoard is running, or has failed.
   */
  waitReady(id: string): Promise<ITensorBoard>;
  restart(id: string): Promise<ITensorBoard>;
  stop(id: string): Promise<ITensorBoard>;
  refresh(): Promise<void>;
}

export const ITensorBoardModel = new Token<ITensorBoardModel>(
  '@studiohub/lab:ITensorBoardModel',
  "The user's running TensorBoards."
);
