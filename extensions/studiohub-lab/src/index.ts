import { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { endpointsPlugins } from './endpoints/plugin';
import { sharingPlugins } from './sharing/plugin';
import { switcherPlugins } from './switcher/plugin';
import { tensorboardPlugins } from './tensorboard/plugin';
import { trainingPlugins } from './training/plugin';

/**
 * StudioHub inside JupyterLab: one plugin per panel, each in its feature's folder.
 * Plugins share state through the tokens of `./tokens` (`provides`/`requires`).
 */
const plugins: JupyterFrontEndPlugin<any>[] = [
  ...tensorboardPlugins,
  ...switcherPlugins,
  ...sharingPlugins,
  ...trainingPlugins,
  ...endpointsPlugins
];

export default plugins;
