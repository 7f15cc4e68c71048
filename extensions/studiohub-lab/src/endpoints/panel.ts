import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import { makeButton } from '../components/button';
import { CommandIDs, IEndpointsModel } from '../tokens';
import { endpointStats, ERRORS_MEANING, trafficLine } from './model';

/**
 * The Endpoints sidebar: my model endpoints with their status, versions and traffic
 * split, requests/s, p50/p99 latency and errors, refreshed every few seconds while
 * it is shown. A click opens the endpoint's tab; Deploy… opens the deploy form.
 */
export class EndpointsPanel extends Widget {
  constructor(options: EndpointsPanel.IOptions) {
    super();
    this._model = options.model;
    this._commands = options.commands;
    this.id = 'studiohub-endpoints';
    this.addClass('jp-StudioHub-EndpointsPanel');
    this.title.caption = 'Model endpoints';
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'Model endpoints');

    const header = document.createElement('header');
    const heading = document.createElement('h2');
    heading.textContent = 'Endpoints';
    const buttons = document.createElement('div');
    buttons.append(
      makeButton({
        text: 'Deploy…',
        label: 'Deploy a model as an endpoint',
        onClick: () =>
          this._commands.execute(CommandIDs.deployEndpoint, { from: 'panel' })
      }),
      makeButton({
        text: 'Refresh',
        label: 'Refresh endpoints',
        onClick: () => this._model.refresh().catch(() => undefined)
      })
    );
    header.append(heading, buttons);
    this._error = document.createElement('div');
    this._error.className = 'jp-StudioHub-EndpointsPanel-error';
    this._error.setAttribute('role', 'alert');
    this._list = document.createElement('ul');
    this._list.setAttribute('aria-label', 'My endpoints');
    this.node.append(header, this._error, this._list);
    this._model.changed.connect(this._render, this);
    this._render();
  }

  /** Watch the list (the model polls) only while shown. */
  protected onAfterShow(): void {
    this._release?.();
    this._release = this._model.watch();
  }

  protected onAfterHide(): void {
    this._release?.();
    this._release = null;
  }

  protected onAfterAttach(): void {
    if (this.isVisible && !this._release) {
      this._release = this._model.watch();
    }
  }

  protected onBeforeDetach(): void {
    this._release?.();
    this._release = null;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._release?.();
    this._release = null;
    super.dispose();
  }

  private _render(): void {
    this._error.textContent = this._model.error ?? '';
    this._list.replaceChildren();
    if (this._model.endpoints.length === 0) {
      const empty = document.createElement('li');
      empty.className = 'jp-StudioHub-EndpointsPanel-empty';
      empty.textContent =
        'No endpoints yet: right-click a model folder or file (.onnx, .pt, …) or a finished training job and choose Deploy as Endpoint…';
      this._list.append(empty);
      return;
    }
    for (const endpoint of this._model.endpoints) {
      const item = document.createElement('li');
      item.className = `jp-StudioHub-EndpointsPanel-endpoint jp-mod-${endpoint.status}`;
      item.setAttribute('aria-label', `Endpoint ${endpoint.name}`);
      item.dataset.endpoint = endpoint.name;
      const open = document.createElement('button');
      open.type = 'button';
      open.className = 'jp-StudioHub-EndpointsPanel-open';
      open.setAttribute('aria-label', `Open endpoint ${endpoint.name}`);
      const name = document.createElement('span');
      name.className = 'jp-StudioHub-EndpointsPanel-name';
      name.textContent = endpoint.name;
      const status = document.createElement('span');
      status.className = 'jp-StudioHub-EndpointsPanel-status';
      status.textContent = endpoint.status;
      const traffic = document.createElement('span');
      traffic.className = 'jp-StudioHub-EndpointsPanel-traffic';
      traffic.textContent = trafficLine(endpoint);
      const stats = document.createElement('span');
      stats.className = 'jp-StudioHub-EndpointsPanel-stats';
      stats.title = ERRORS_MEANING;
      stats.textContent = endpointStats(
        endpoint,
        this._model.metricsOf(endpoint.name)
      );
      open.append(name, status, traffic, stats);
      open.addEventListener('click', () => {
        void this._commands.execute(CommandIDs.openEndpoint, {
          name: endpoint.name
        });
      });
      item.append(
        open,
        makeButton({
          text: 'Delete',
          label: `Delete endpoint ${endpoint.name}`,
          onClick: () =>
            this._commands.execute(CommandIDs.deleteEndpoint, {
              name: endpoint.name
            })
        })
      );
      this._list.append(item);
    }
  }

  private _model: IEndpointsModel;
  private _commands: CommandRegistry;
  private _release: (() => void) | null = null;
  private _error: HTMLElement;
  private _list: HTMLUListElement;
}

export namespace EndpointsPanel {
  export interface IOptions {
    model: IEndpointsModel;
    commands: CommandRegistry;
  }
}
