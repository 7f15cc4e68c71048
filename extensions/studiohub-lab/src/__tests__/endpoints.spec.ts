import { CommandRegistry } from '@lumino/commands';

import { StudioHubAPIError } from '../api';
import {
  DeployFormModel,
  EndpointsModel,
  endpointStats,
  exampleRequest,
  formatAnswer,
  IDeployValues,
  isModelFile,
  parseRequest,
  rollbackPlan,
  canSplitTraffic,
  specFromDeploy,
  suggestName,
  trafficLine
} from '../endpoints/model';
import { Request } from '../components/requests';
import { EndpointsPanel } from '../endpoints/panel';
import { EndpointView } from '../endpoints/widget';
import {
  CommandIDs,
  IEndpoint,
  IEndpointMetrics,
  IEndpointSpec,
  IEndpointsModel,
  IEndpointVersion,
  IModelMetadata
} from '../tokens';

function makeEndpoint(overrides: Partial<IEndpoint> = {}): IEndpoint {
  return {
    name: 'iris',
    user: 'ada',
    domain: 'everyone',
    url: '/services/models/iris/',
    created: '2026-12-02T05:00:00+00:00',
    status: 'ready',
    versions: [
      {
        version: 1,
        format: 'onnx',
        image: 'pytorch',
        size: 'small',
        replicas: [
          { name: 'replica-0', state: 'ready', restarts: 0, reason: '' },
          { name: 'replica-1', state: 'ready', restarts: 1, reason: '' }
        ],
        traffic: 90,
        status: 'serving',
        source: 'models/iris',
        created: '2026-12-02T05:00:00+00:00'
      },
      {
        version: 2,
        format: 'onnx',
        image: 'pytorch',
        size: 'small',
        replicas: [
          { name: 'replica-0', state: 'ready', restarts: 0, reason: '' }
        ],
        traffic: 10,
        status: 'serving',
        source: 'models/iris2',
        created: '2026-12-02T06:00:00+00:00'
      }
    ],
    ...overrides
  };
}

const METRICS: IEndpointMetrics = {
  versions: {
    '1': {
      requests: 100,
      rps: 4.5,
      p50_ms: 1.25,
      p99_ms: 12.4,
      errors: 1,
      replicas: { 'replica-0': { rps: 2.2, p50_ms: 1.2 } }
    },
    '2': {
      requests: 10,
      rps: 0.5,
      p50_ms: 3,
      p99_ms: 30,
      errors: 1,
      replicas: {}
    }
  }
};

const METADATA: IModelMetadata = {
  name: 'iris',
  platform: 'onnxruntime',
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 3] }]
};

const VALUES: IDeployValues = {
  name: 'iris',
  model: 'models/iris',
  image: 'pytorch',
  size: 'small',
  replicas: 2,
  canary: null
};

const tick = (ms = 0) => new Promise(resolve => setTimeout(resolve, ms));

type Call = [string, RequestInit | undefined];

/** A stand-in for `requestAPI`: records calls, answers by path. */
function fakeRequest(
  calls: Call[],
  answer: (endPoint: string, init?: RequestInit) => unknown
): Request {
  return (async (endPoint: string, init?: RequestInit) => {
    calls.push([endPoint, init]);
    return answer(endPoint, init);
  }) as Request;
}

describe('the endpoints model', () => {
  it('polls the list and metrics only while watched', async () => {
    const calls: Call[] = [];
    const model = new EndpointsModel({
      request: fakeRequest(calls, endPoint =>
        endPoint === 'endpoints' ? { endpoints: [makeEndpoint()] } : METRICS
      ),
      refreshInterval: 0.02
    });
    await tick(80);
    expect(calls).toEqual([]);
    const release = model.watch();
    await tick(100);
    expect(calls[0][0]).toBe('endpoints');
    expect(calls[1][0]).toBe('endpoints/iris/metrics');
    const listCalls = calls.filter(c => c[0] === 'endpoints').length;
    expect(listCalls).toBeGreaterThan(1);
    expect(model.find('iris')?.versions).toHaveLength(2);
    expect(model.metricsOf('iris')).toEqual(METRICS);
    release();
    await tick(30);
    const after = calls.length;
    await tick(100);
    expect(calls.length).toBe(after);
    model.dispose();
  });

  it('keeps the last list and says why a refresh failed', async () => {
    let fail = false;
    const model = new EndpointsModel({
      request: fakeRequest([], endPoint => {
        if (fail) {
          throw new StudioHubAPIError(
            503,
            'model endpoints are not available on this server'
          );
        }
        return endPoint === 'endpoints' ? [makeEndpoint()] : METRICS;
      }),
      refreshInterval: 1000
    });
    await model.refresh();
    fail = true;
    await expect(model.refresh()).rejects.toThrow('not available');
    expect(model.endpoints).toHaveLength(1);
    expect(model.error).toBe(
      'model endpoints are not available on this server'
    );
    model.dispose();
  });

  it('calls the routes of each action and keeps the list current', async () => {
    const calls: Call[] = [];
    const model = new EndpointsModel({
      request: fakeRequest(calls, (endPoint, init) => {
        if (init?.method === 'DELETE') {
          return '';
        }
        if (endPoint.endsWith('/tokens') && init?.method === 'POST') {
          return { id: 't1', token: 'secret', created: 'now' };
        }
        if (endPoint.endsWith('/tokens')) {
          return { tokens: [{ id: 't1', created: 'now' }] };
        }
        if (endPoint.endsWith('/predict')) {
          return { predictions: [[0.1, 0.9]] };
        }
        return makeEndpoint();
      }),
      refreshInterval: 1000
    });
    const spec: IEndpointSpec = { name: 'iris', model: 'models/iris' };
    await model.deploy(spec);
    expect(calls[0]).toEqual([
      'endpoints',
      { method: 'POST', body: JSON.stringify(spec) }
    ]);
    expect(model.endpoints.map(e => e.name)).toEqual(['iris']);
    await model.setTraffic('iris', 25);
    expect(calls[1]).toEqual([
      'endpoints/iris/traffic',
      { method: 'POST', body: '{"canary":25}' }
    ]);
    await model.rollback('iris');
    expect(calls[2]).toEqual(['endpoints/iris/rollback', { method: 'POST' }]);
    expect(
      await model.predict('iris', 'v1', { instances: [[1, 2, 3, 4]] }, 2)
    ).toEqual({ predictions: [[0.1, 0.9]] });
    expect(calls[3]).toEqual([
      'endpoints/iris/predict',
      {
        method: 'POST',
        body: '{"protocol":"v1","body":{"instances":[[1,2,3,4]]},"version":2}'
      }
    ]);
    expect(await model.tokens('iris')).toEqual([{ id: 't1', created: 'now' }]);
    expect((await model.createToken('iris', 'ci pipeline')).token).toBe(
      'secret'
    );
    expect(calls[calls.length - 1]).toEqual([
      'endpoints/iris/tokens',
      { method: 'POST', body: '{"note":"ci pipeline"}' }
    ]);
    await model.revokeToken('iris', 't1');
    expect(calls[calls.length - 1]).toEqual([
      'endpoints/iris/tokens/t1',
      { method: 'DELETE' }
    ]);
    await model.metadata('iris', 2);
    expect(calls[calls.length - 1][0]).toBe(
      'endpoints/iris/metadata?version=2'
    );
    await model.delete('iris');
    expect(calls[calls.length - 1]).toEqual([
      'endpoints/iris',
      { method: 'DELETE' }
    ]);
    expect(model.endpoints).toEqual([]);
    model.dispose();
  });

  it('passes the service’s and the endpoint’s refusals through as worded', async () => {
    const SHAPE = "input 'x' has shape [1, 3]; the model wants [-1, 4]";
    const model = new EndpointsModel({
      request: fakeRequest([], (endPoint, init) => {
        if (endPoint.startsWith('endpoints?check=true')) {
          const spec = JSON.parse(String(init?.body)) as IEndpointSpec;
          if (spec.size === 'large') {
            throw new StudioHubAPIError(409, 'no room: large needs 8 GiB');
          }
          if (spec.size === 'boom') {
            throw new StudioHubAPIError(502, 'the models service failed');
          }
          return { ok: true };
        }
        throw new StudioHubAPIError(400, SHAPE);
      }),
      refreshInterval: 1000
    });
    expect(await model.check({ name: 'iris', model: 'm' })).toBeNull();
    expect(await model.check({ name: 'iris', model: 'm', size: 'large' })).toBe(
      'no room: large needs 8 GiB'
    );
    await expect(
      model.check({ name: 'iris', model: 'm', size: 'boom' })
    ).rejects.toThrow('the models service failed');
    await expect(
      model.predict('iris', 'v1', { instances: [[1, 2, 3]] })
    ).rejects.toThrow(SHAPE);
    model.dispose();
  });
});

describe('the Deploy as Endpoint… form', () => {
  it('asks the dry run only for the latest values, after a pause', async () => {
    const checked: IEndpointSpec[] = [];
    const check = jest.fn(async (spec: IEndpointSpec) => {
      checked.push(spec);
      await tick(spec.size === 'large' ? 30 : 0);
      return spec.size === 'large'
        ? "no room: size 'large' needs 8 GiB"
        : spec.model === 'notes.txt'
          ? 'notes.txt: not a model this service can serve (onnx, torchscript, …)'
          : null;
    });
    const find = (name: string) =>
      name === 'iris' ? makeEndpoint() : undefined;
    const form = new DeployFormModel({ check, find }, VALUES, 10);
    expect(await form.checkNow()).toEqual({
      ok: true,
      message: 'Ready: deploys a new version of iris.'
    });
    form.update({ model: 'notes.txt' });
    form.update({ model: 'notes.txt', size: 'medium' });
    expect(form.verdict).toBeNull();
    await tick(60);
    expect(checked.map(s => s.size)).toEqual(['small', 'medium']);
    expect(form.verdict).toEqual({
      ok: false,
      message:
        'notes.txt: not a model this service can serve (onnx, torchscript, …)'
    });
    // A slow answer to older values does not overwrite a newer one.
    form.update({ model: 'models/iris', size: 'large' });
    await tick(15);
    form.update({ name: 'fresh', size: 'small' });
    await tick(80);
    expect(form.verdict).toEqual({
      ok: true,
      message: 'Ready: deploys a new endpoint fresh.'
    });
    form.dispose();
  });

  it('says what is wrong in a field without asking the service', async () => {
    const check = jest.fn(async () => null);
    const form = new DeployFormModel(
      { check, find: () => undefined },
      { ...VALUES, name: 'Iris_1' },
      10
    );
    expect((await form.checkNow()).message).toMatch(
      /^name: "Iris_1" is not an endpoint name/
    );
    form.update({ name: 'iris', canary: 120 });
    expect((await form.checkNow()).message).toBe(
      'canary: a share between 0 and 100 %'
    );
    form.update({ canary: null, model: 'models/ ', replicas: 0 });
    expect((await form.checkNow()).message).toMatch(/^replicas: /);
    expect(check).not.toHaveBeenCalled();
    form.dispose();
  });

  it('prompts for the empty required fields without calling them wrong', async () => {
    const check = jest.fn(async () => null);
    const form = new DeployFormModel(
      { check, find: () => undefined },
      { ...VALUES, name: '', model: '' },
      10
    );
    expect(await form.checkNow()).toEqual({
      ok: false,
      incomplete: true,
      message: 'Name the endpoint and choose the model to deploy.'
    });
    form.update({ name: 'iris' });
    expect(await form.checkNow()).toEqual({
      ok: false,
      incomplete: true,
      message: 'Choose the model: a file or folder in your home.'
    });
    form.update({ model: 'models/iris' });
    expect((await form.checkNow()).ok).toBe(true);
    expect(check).toHaveBeenCalledTimes(1);
    form.dispose();
  });

  it('turns the fields into a spec and suggests names', () => {
    expect(
      specFromDeploy({ ...VALUES, model: '/models/iris', canary: 10 })
    ).toEqual({
      name: 'iris',
      model: 'models/iris',
      image: 'pytorch',
      size: 'small',
      replicas: 2,
      canary: 10
    });
    expect(suggestName('studiohub-jobs/0123456789ab/outputs')).toBe(
      'job-0123456789ab'
    );
    expect(suggestName('models/My_Net.onnx')).toBe('my-net');
    expect(suggestName('models/resnet50/')).toBe('resnet50');
    expect(suggestName('2024.pt')).toBe('model');
    expect(isModelFile('a/b/model.ONNX')).toBe(true);
    expect(isModelFile('net-symbol.json')).toBe(true);
    expect(isModelFile('train.py')).toBe(false);
  });
});

describe('the try-it box’s request', () => {
  it('is built from the model’s V2 inputs when known', () => {
    expect(JSON.parse(exampleRequest('v2', METADATA))).toEqual({
      inputs: [
        { name: 'x', shape: [1, 4], datatype: 'FP32', data: [0, 0, 0, 0] }
      ]
    });
    expect(JSON.parse(exampleRequest('v1', METADATA))).toEqual({
      instances: [[0, 0, 0, 0]]
    });
    const two: IModelMetadata = {
      name: 'm',
      inputs: [
        { name: 'ids', datatype: 'INT64', shape: [-1, 2] },
        { name: 'mask', datatype: 'BOOL', shape: [1, 2] }
      ]
    };
    expect(JSON.parse(exampleRequest('v1', two))).toEqual({
      instances: [{ ids: [0, 0], mask: [false, false] }]
    });
    expect(JSON.parse(exampleRequest('v2', two)).inputs[1]).toEqual({
      name: 'mask',
      shape: [1, 2],
      datatype: 'BOOL',
      data: [false, false]
    });
    // One input per line, its data on that line: readable and editable.
    expect(exampleRequest('v2', METADATA).split('\n')).toHaveLength(5);
  });

  it('is a template to edit without metadata', () => {
    expect(JSON.parse(exampleRequest('v1', null))).toEqual({
      instances: [[0, 0, 0, 0]]
    });
    expect(JSON.parse(exampleRequest('v2', null)).inputs[0].name).toBe(
      'input-0'
    );
    const huge: IModelMetadata = {
      name: 'big',
      inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 224, 224, 3] }]
    };
    expect(JSON.parse(exampleRequest('v2', huge)).inputs[0].name).toBe('image');
  });

  it('is a template to edit when the model records no shapes (TorchScript)', () => {
    // The service shows an input of unknown shape as [-1]: not a one-number example.
    const torchscript: IModelMetadata = {
      name: 'net',
      platform: 'pytorch_torchscript',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1] }]
    };
    expect(JSON.parse(exampleRequest('v2', torchscript))).toEqual({
      inputs: [
        { name: 'input', shape: [1, 4], datatype: 'FP32', data: [0, 0, 0, 0] }
      ]
    });
    expect(JSON.parse(exampleRequest('v1', torchscript))).toEqual({
      instances: [[0, 0, 0, 0]]
    });
  });

  it('answers read with each tensor on one line', () => {
    expect(
      formatAnswer({
        predictions: [
          [0.1, 0.9],
          [0.5, 0.5]
        ]
      })
    ).toBe('{\n  "predictions": [[0.1,0.9],[0.5,0.5]]\n}');
    expect(
      formatAnswer({ outputs: [{ name: 'y', data: [1, 2] }], id: null })
    ).toBe(
      '{\n  "outputs": [\n    {\n      "name": "y",\n      "data": [1,2]\n    }\n  ],\n  "id": null\n}'
    );
    expect(formatAnswer({})).toBe('{}');
  });

  it('must be a JSON object', () => {
    expect(parseRequest('{"instances": [[1]]}')).toEqual({
      instances: [[1]]
    });
    expect(() => parseRequest('{"instances": ')).toThrow(
      /^The request is not JSON: /
    );
    expect(() => parseRequest('[1, 2]')).toThrow('must be a JSON object');
    expect(() => parseRequest('  \n')).toThrow('Write the request first');
  });
});

describe('what the views show', () => {
  it('sums requests and errors, and shows the main version’s latency', () => {
    const endpoint = makeEndpoint();
    expect(endpointStats(endpoint, METRICS)).toBe(
      '5.0 req/s · p50 1.3 ms · p99 12 ms · 2 errors (5xx)'
    );
    expect(endpointStats(endpoint, undefined)).toBe('');
    expect(trafficLine(endpoint)).toBe('v2 10% · v1 90%');
  });

  it('the sidebar lists endpoints and opens one', async () => {
    const model = new EndpointsModel({
      request: fakeRequest([], endPoint =>
        endPoint === 'endpoints' ? { endpoints: [makeEndpoint()] } : METRICS
      ),
      refreshInterval: 1000
    });
    await model.refresh();
    const commands = new CommandRegistry();
    const executed: [string, unknown][] = [];
    for (const id of [CommandIDs.openEndpoint, CommandIDs.deleteEndpoint]) {
      commands.addCommand(id, {
        execute: args => executed.push([id, args.name])
      });
    }
    const panel = new EndpointsPanel({ model, commands });
    const row = panel.node.querySelector('[aria-label="Endpoint iris"]')!;
    expect(
      row.querySelector('.jp-StudioHub-EndpointsPanel-traffic')!.textContent
    ).toBe('v2 10% · v1 90%');
    expect(
      row.querySelector('.jp-StudioHub-EndpointsPanel-stats')!.textContent
    ).toBe('5.0 req/s · p50 1.3 ms · p99 12 ms · 2 errors (5xx)');
    panel.node
      .querySelector<HTMLButtonElement>('[aria-label="Open endpoint iris"]')!
      .click();
    panel.node
      .querySelector<HTMLButtonElement>('[aria-label="Delete endpoint iris"]')!
      .click();
    await tick();
    expect(executed).toEqual([
      [CommandIDs.openEndpoint, 'iris'],
      [CommandIDs.deleteEndpoint, 'iris']
    ]);
    panel.dispose();
    model.dispose();
  });

  it('the tab prefills try-it from the metadata and shows the answer or the refusal', async () => {
    const sent: unknown[] = [];
    const model: Partial<IEndpointsModel> = {
      get: async () => makeEndpoint(),
      metrics: async () => METRICS,
      tokens: async () => [],
      metadata: async () => METADATA,
      logs: async () => new TextEncoder().encode('ready\n'),
      predict: async (name, protocol, body, version) => {
        sent.push({ name, protocol, body, version });
        if ((body.inputs as unknown[]).length === 0) {
          throw new StudioHubAPIError(400, 'no inputs given');
        }
        return { outputs: [{ name: 'y', data: [0.1, 0.2, 0.7] }] };
      }
    };
    const view = new EndpointView({
      name: 'iris',
      model: model as IEndpointsModel,
      interval: 60_000,
      actions: {
        traffic: () => undefined,
        rollback: () => undefined,
        delete: () => undefined
      }
    });
    await view.refresh();
    await tick(10);
    const request = view.node.querySelector<HTMLTextAreaElement>(
      '[aria-label="Request (JSON)"]'
    )!;
    expect(JSON.parse(request.value).inputs[0].shape).toEqual([1, 4]);
    const rows = Array.from(
      view.node.querySelectorAll('.jp-StudioHub-EndpointView-version')
    ).map(r => r.getAttribute('aria-label'));
    expect(rows).toEqual(['Version 2', 'Version 1']);
    expect(
      view.node.querySelector('[aria-label="Version 1 replica-1"]')!.textContent
    ).toContain('1 restart');
    await view.send();
    const answer = view.node.querySelector('[aria-label="Answer"]')!;
    expect(answer.textContent).toContain('"data": [0.1,0.2,0.7]');
    expect(answer.classList.contains('jp-mod-error')).toBe(false);
    expect(sent[0]).toEqual({
      name: 'iris',
      protocol: 'v2',
      body: JSON.parse(request.value),
      version: undefined
    });
    request.value = '{"inputs": []}';
    await view.send();
    expect(answer.textContent).toBe('no inputs given');
    expect(answer.classList.contains('jp-mod-error')).toBe(true);
    request.value = 'not json';
    await view.send();
    expect(answer.textContent).toMatch(/^The request is not JSON/);
    expect(sent).toHaveLength(2);
    view.dispose();
  });

  it('offers the share and Rollback only when they can do something', async () => {
    const [v1, v2] = makeEndpoint().versions;
    const only: IEndpointVersion = { ...v1, traffic: 100 };
    const retired: IEndpointVersion = { ...v1, status: 'retired', traffic: 0 };
    const promoted: IEndpointVersion = { ...v2, traffic: 100 };
    const starting: IEndpointVersion = {
      ...v2,
      status: 'starting',
      traffic: 0
    };
    // One version serving: nothing to split, nothing to go back to.
    const one = makeEndpoint({
      versions: [only],
      live: 1,
      canary: null
    } as Partial<IEndpoint>);
    expect([canSplitTraffic(one), rollbackPlan(one)]).toEqual([false, null]);
    // A canary beside it: the share is its; a rollback retires it.
    const split = makeEndpoint({ live: 1, canary: 2 } as Partial<IEndpoint>);
    expect(canSplitTraffic(split)).toBe(true);
    expect(rollbackPlan(split)).toBe(
      'Retire version 2; version 1 keeps all traffic'
    );
    // Promoted: one serving, the one before retired: the service names it as what a
    // rollback starts again.
    const after = makeEndpoint({
      versions: [retired, promoted],
      live: 2,
      canary: null,
      previous: 1
    } as Partial<IEndpoint>);
    expect(canSplitTraffic(after)).toBe(false);
    expect(rollbackPlan(after)).toBe(
      'Start version 1 again; it replaces version 2 once ready'
    );
    // Rolled back to version 1: nothing served before it.
    const back = makeEndpoint({
      versions: [only, { ...v2, status: 'retired', traffic: 0 }],
      live: 1,
      canary: null,
      previous: null
    } as Partial<IEndpoint>);
    expect(rollbackPlan(back)).toBeNull();
    // A first version still starting: nothing to go back to (Delete stops it).
    const first = makeEndpoint({
      versions: [{ ...v1, status: 'starting', traffic: 0 }],
      live: null,
      canary: null,
      previous: null
    } as Partial<IEndpoint>);
    expect(rollbackPlan(first)).toBeNull();
    // A version starting beside the live one is dropped.
    const updating = makeEndpoint({
      versions: [only, starting],
      live: 1,
      canary: null
    } as Partial<IEndpoint>);
    expect(canSplitTraffic(updating)).toBe(false);
    expect(rollbackPlan(updating)).toBe(
      'Stop version 2, still starting; version 1 keeps all traffic'
    );
    // Without live/canary in the answer, two serving versions are a split.
    expect(canSplitTraffic(makeEndpoint())).toBe(true);
    expect(canSplitTraffic(makeEndpoint({ versions: [only] }))).toBe(false);

    // The tab: hidden with one version, shown with a canary.
    let endpoint = one;
    const model: Partial<IEndpointsModel> = {
      get: async () => endpoint,
      metrics: async () => METRICS,
      tokens: async () => [],
      metadata: async () => METADATA,
      logs: async () => new Uint8Array()
    };
    const view = new EndpointView({
      name: 'iris',
      model: model as IEndpointsModel,
      interval: 60_000,
      actions: {
        traffic: () => undefined,
        rollback: () => undefined,
        delete: () => undefined
      }
    });
    const shown = (label: string) =>
      !view.node.querySelector(`[aria-label="${label}"]`)!.closest('[hidden]');
    await view.refresh();
    await tick(10);
    expect([
      shown('Canary share (slider)'),
      shown('Apply the canary share'),
      shown('Roll back to the previous version'),
      shown('Delete this endpoint')
    ]).toEqual([false, false, false, true]);
    expect(view.node.textContent).toContain('deploy another to this name');
    endpoint = split;
    await view.refresh();
    await tick(10);
    expect([
      shown('Canary share (slider)'),
      shown('Apply the canary share'),
      shown('Roll back to the previous version')
    ]).toEqual([true, true, true]);
    expect(
      view.node.querySelector<HTMLInputElement>(
        '[aria-label="Canary share in percent"]'
      )!.value
    ).toBe('10');
    expect(
      view.node.querySelector<HTMLButtonElement>(
        '[aria-label="Roll back to the previous version"]'
      )!.title
    ).toBe('Retire version 2; version 1 keeps all traffic');
    const errors = Array.from(view.node.querySelectorAll('th')).pop()!;
    expect(errors.textContent).toBe('5xx errors');
    expect(errors.title).toMatch(/500 or more/);
    view.dispose();
  });

  it('shows a new token at once, once, with Copy', async () => {
    const model: Partial<IEndpointsModel> = {
      get: async () => makeEndpoint(),
      metrics: async () => METRICS,
      tokens: async () => [{ id: 'tok1', created: '2026-12-02T07:00:00Z' }],
      metadata: async () => METADATA,
      logs: async () => new Uint8Array(),
      createToken: async () => ({
        id: 'tok1',
        created: '2026-12-02T07:00:00Z',
        token: 'shm_secret'
      })
    };
    const view = new EndpointView({
      name: 'iris',
      model: model as IEndpointsModel,
      interval: 60_000,
      actions: {
        traffic: () => undefined,
        rollback: () => undefined,
        delete: () => undefined
      }
    });
    document.body.append(view.node);
    const scrolled: Element[] = [];
    Element.prototype.scrollIntoView = function (this: Element) {
      scrolled.push(this);
    };
    await view.refresh();
    view.node
      .querySelector<HTMLButtonElement>(
        '[aria-label="Create an endpoint token"]'
      )!
      .click();
    await tick(10);
    const shown = view.node.querySelector<HTMLElement>(
      '[aria-label="New endpoint token"]'
    )!;
    expect(shown.hidden).toBe(false);
    expect(shown.textContent).toContain('shown only this once');
    expect(shown.querySelector('[aria-label="New token"]')!.textContent).toBe(
      'shm_secret'
    );
    expect(scrolled).toEqual([shown]);
    expect(document.activeElement!.getAttribute('aria-label')).toBe(
      'Copy the new token'
    );
    shown
      .querySelector<HTMLButtonElement>('[aria-label="Hide the new token"]')!
      .click();
    expect(shown.hidden).toBe(true);
    expect(shown.textContent).toBe('');
    delete (Element.prototype as Partial<Element>).scrollIntoView;
    view.node.remove();
    view.dispose();
  });
});
