import {
  ILayoutRestorer,
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
import { LabIcon } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { addSidebar } from '../components/sidebar';
import {
  CommandIDs,
  IEndpointsModel,
  IJob,
  IKernelOptions,
  ISwitcher,
  ITrainingModel,
  PLUGIN_IDS
} from '../tokens';
import { errorText } from '../components/errors';
import { allowedOr } from '../training/model';
import { DeployForm } from './deploy';
import {
  DeployFormModel,
  EndpointsModel,
  IDeployValues,
  isModelFile,
  suggestName
} from './model';
import { EndpointsPanel } from './panel';
import { EndpointView } from './widget';

const CATEGORY = 'Endpoints';

export const endpointsIcon = new LabIcon({
  name: 'studiohub:endpoints',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" d="M4 3h16a1 1 0 0 1 1 1v5a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1zm0 11h16a1 1 0 0 1 1 1v5a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1v-5a1 1 0 0 1 1-1zm3-8.5a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm0 11a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zM11 6v2h7V6zm0 11v2h7v-2z"/></svg>'
});

/** Where a training job's outputs are, relative to the home. */
function jobOutputs(id: string, job: IJob | undefined): string {
  return job?.dirs.outputs ?? `studiohub-jobs/${id}/outputs`;
}

/**
 * Deploy as Endpoint… (file browser folders and model files, a finished training job,
 * the sidebar, the palette), an endpoint's tab and its actions; provides the endpoints
 * model to the sidebar.
 */
const endpointsPlugin: JupyterFrontEndPlugin<IEndpointsModel> = {
  id: PLUGIN_IDS.endpoints,
  description:
    'Deploy models as HTTP endpoints, watch them in tabs, try them with a request.',
  autoStart: true,
  provides: IEndpointsModel,
  optional: [
    ICommandPalette,
    IDefaultFileBrowser,
    ILayoutRestorer,
    ISwitcher,
    ITrainingModel
  ],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    fileBrowser: IDefaultFileBrowser | null,
    restorer: ILayoutRestorer | null,
    switcher: ISwitcher | null,
    training: ITrainingModel | null
  ): IEndpointsModel => {
    const model = new EndpointsModel();
    const { commands, shell } = app;
    const tabs = new WidgetTracker<MainAreaWidget<EndpointView>>({
      namespace: 'studiohub-endpoint'
    });

    /** The file browser's selected folder or model file, if that is what it is. */
    const selectedModel = (): string | null => {
      const item = fileBrowser
        ? Array.from(fileBrowser.selectedItems())[0]
        : null;
      if (!item) {
        return null;
      }
      return item.type === 'directory' || isModelFile(item.path)
        ? item.path
        : null;
    };

    /** The training job under the context menu: its tab, or its sidebar row. */
    const clickedJob = (): string | null => {
      const tab = app.contextMenuHitTest(
        node => node.dataset.jobId !== undefined
      );
      if (tab?.dataset.jobId) {
        return tab.dataset.jobId;
      }
      const row = app.contextMenuHitTest(node =>
        node.classList.contains('jp-StudioHub-TrainingPanel-job')
      );
      const label = row?.getAttribute('aria-label');
      const job = training?.jobs.find(
        j => label === `Training job ${j.name} (${j.id})`
      );
      return job?.id ?? null;
    };

    /** What the form starts from: the model, a name for it, an image and size. */
    const prefill = async (
      args: ReadonlyPartialJSONObject
    ): Promise<{ values: IDeployValues; options: IKernelOptions | null }> => {
      let modelPath = typeof args.model === 'string' ? args.model : '';
      let image = '';
      let size = '';
      const jobId =
        typeof args.job === 'string'
          ? args.job
          : args.from === 'training-job'
            ? clickedJob()
            : null;
      if (jobId) {
        const job = training?.find(jobId);
        modelPath = jobOutputs(jobId, job);
        image = job?.image ?? '';
        size = job?.size ?? '';
      } else if (!modelPath && args.from === 'filebrowser') {
        modelPath = selectedModel() ?? '';
      }
      // The list as it is now: a name of mine adds a version (deploys elsewhere count).
      await model.refresh().catch(() => undefined);
      let options: IKernelOptions | null = null;
      try {
        options = switcher ? await switcher.loadOptions() : null;
      } catch {
        options = switcher?.options ?? null;
      }
      return {
        options,
        values: {
          name:
            typeof args.name === 'string'
              ? args.name
              : modelPath
                ? suggestName(modelPath)
                : '',
          model: modelPath,
          image: allowedOr(
            image || undefined,
            options?.server.image,
            options?.images.map(i => i.id)
          ),
          size: allowedOr(
            size || undefined,
            options?.server.size,
            options?.sizes.map(s => s.id)
          ),
          replicas: 1,
          canary: null
        }
      };
    };

    const refreshTabs = (name: string) => {
      tabs.forEach(w => {
        if (w.content.endpointName === name) {
          void w.content.refresh();
        }
      });
    };

    const openEndpoint = (name: string): MainAreaWidget<EndpointView> => {
      const existing = tabs.find(w => w.content.endpointName === name);
      if (existing) {
        shell.activateById(existing.id);
        void existing.content.refresh();
        return existing;
      }
      const view = new EndpointView({
        name,
        model,
        actions: {
          traffic: (endpoint, canary) =>
            commands.execute(CommandIDs.setEndpointTraffic, {
              name: endpoint,
              canary
            }),
          rollback: (endpoint, plan) =>
            commands.execute(CommandIDs.rollbackEndpoint, {
              name: endpoint,
              plan: plan ?? ''
            }),
          delete: endpoint =>
            commands.execute(CommandIDs.deleteEndpoint, { name: endpoint })
        }
      });
      const widget = new MainAreaWidget({ content: view });
      view.node.setAttribute('aria-label', `Endpoint ${name}`);
      widget.id = `studiohub-endpoint-${name}`;
      widget.title.icon = endpointsIcon;
      widget.title.closable = true;
      void tabs.add(widget);
      shell.add(widget, 'main');
      shell.activateById(widget.id);
      return widget;
    };

    commands.addCommand(CommandIDs.deployEndpoint, {
      label: 'Deploy as Endpoint…',
      caption:
        'Serve this model over HTTP (TensorFlow Serving and Open Inference protocols) with replicas, versions and a canary split',
      icon: args => (args.from === 'palette' ? undefined : endpointsIcon),
      // In the file browser, only on a folder or a model file.
      isVisible: args =>
        args.from !== 'filebrowser' || selectedModel() !== null,
      execute: async args => {
        const { values, options } = await prefill(args);
        const form = new DeployFormModel(model, values);
        const answer = await showDialog({
          title: values.model
            ? `Deploy ${values.model} as an endpoint`
            : 'Deploy a model as an endpoint',
          body: new DeployForm(form, options),
          buttons: [
            Dialog.cancelButton(),
            Dialog.okButton({ label: 'Deploy' })
          ],
          focusNodeSelector: 'input'
        });
        if (!answer.button.accept) {
          return;
        }
        try {
          const spec = answer.value ?? form.spec();
          const endpoint = await model.deploy(spec);
          const newest = Math.max(0, ...endpoint.versions.map(v => v.version));
          Notification.success(
            `Endpoint ${endpoint.name}: version ${newest} deployed (${endpoint.status})`,
            { autoClose: 3000 }
          );
          openEndpoint(endpoint.name);
        } catch (error) {
          await showErrorMessage('Cannot deploy the model', errorText(error));
        }
      }
    });

    commands.addCommand(CommandIDs.openEndpoint, {
      label: 'Open Endpoint',
      execute: args => openEndpoint(args.name as string)
    });

    commands.addCommand(CommandIDs.setEndpointTraffic, {
      label: 'Set Endpoint Canary Share',
      caption: "The newest version's share of the requests (100 promotes it)",
      execute: async args => {
        const name = args.name as string;
        const canary = Number(args.canary);
        try {
          await model.setTraffic(name, canary);
          Notification.success(
            canary >= 100
              ? `${name}: the newest version takes all traffic`
              : `${name}: the newest version takes ${canary}% of the traffic`,
            { autoClose: 3000 }
          );
        } catch (error) {
          await showErrorMessage(
            `Cannot change the traffic of ${name}`,
            errorText(error)
          );
        }
        refreshTabs(name);
      }
    });

    commands.addCommand(CommandIDs.rollbackEndpoint, {
      label: 'Roll Back Endpoint…',
      caption:
        'All traffic back to the previous version; the newest is retired',
      execute: async args => {
        const name = args.name as string;
        const plan =
          (args.plan as string | undefined) ||
          'All traffic goes back to the previous version; the newest is retired';
        const answer = await showDialog({
          title: `Roll back the endpoint ${name}?`,
          body: `${plan}. Programs calling ${name} keep getting answers meanwhile.`,
          buttons: [
            Dialog.cancelButton(),
            Dialog.warnButton({ label: 'Roll Back' })
          ]
        });
        if (!answer.button.accept) {
          return;
        }
        try {
          await model.rollback(name);
          Notification.success(`${name}: rolled back to the previous version`, {
            autoClose: 3000
          });
        } catch (error) {
          await showErrorMessage(`Cannot roll back ${name}`, errorText(error));
        }
        refreshTabs(name);
      }
    });

    commands.addCommand(CommandIDs.deleteEndpoint, {
      label: 'Delete Endpoint…',
      caption: 'Stop every version of an endpoint and forget it',
      execute: async args => {
        const name = args.name as string;
        const answer = await showDialog({
          title: `Delete the endpoint ${name}?`,
          body: `Every version and replica of ${name} stops now, its tokens stop working and programs calling it get errors. The model files in your home are kept.`,
          buttons: [
            Dialog.cancelButton(),
            Dialog.warnButton({ label: 'Delete' })
          ]
        });
        if (!answer.button.accept) {
          return;
        }
        try {
          await model.delete(name);
        } catch (error) {
          await showErrorMessage(`Cannot delete ${name}`, errorText(error));
          return;
        }
        tabs.forEach(w => {
          if (w.content.endpointName === name) {
            w.dispose();
          }
        });
      }
    });

    // File browser: folders and model files (the command hides itself on others).
    app.contextMenu.addItem({
      command: CommandIDs.deployEndpoint,
      args: { from: 'filebrowser' },
      selector: '.jp-DirListing-item',
      rank: 13
    });
    // A finished training job: its tab and its row in the Training sidebar.
    for (const selector of [
      '.jp-StudioHub-JobView[data-job-status="succeeded"]',
      '.jp-StudioHub-TrainingPanel-job.jp-mod-succeeded'
    ]) {
      app.contextMenu.addItem({
        command: CommandIDs.deployEndpoint,
        args: { from: 'training-job' },
        selector,
        rank: 20
      });
    }
    if (palette) {
      palette.addItem({
        command: CommandIDs.deployEndpoint,
        category: CATEGORY,
        args: { from: 'palette' }
      });
    }
    if (restorer) {
      void restorer.restore(tabs, {
        command: CommandIDs.openEndpoint,
        args: widget => ({ name: widget.content.endpointName }),
        name: widget => widget.content.endpointName
      });
    }
    return model;
  }
};

/**
 * The Endpoints sidebar: my endpoints with their status, traffic and numbers.
 */
const endpointsPanelPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_IDS.endpointsPanel,
  description: "A sidebar listing the user's model endpoints.",
  autoStart: true,
  requires: [IEndpointsModel],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    model: IEndpointsModel,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const panel = new EndpointsPanel({ model, commands: app.commands });
    panel.title.icon = endpointsIcon;
    addSidebar(app, panel, {
      rank: 630,
      command: CommandIDs.showEndpoints,
      label: 'Show Endpoints',
      category: CATEGORY,
      restorer,
      palette
    });
  }
};

export const endpointsPlugins: JupyterFrontEndPlugin<unknown>[] = [
  endpointsPlugin,
  endpointsPanelPlugin
];
