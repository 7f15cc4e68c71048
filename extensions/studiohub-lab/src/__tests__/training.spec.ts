import { CommandRegistry } from '@lumino/commands';

import { StudioHubAPIError } from '../api';
import {
  CommandIDs,
  IJob,
  IJobSpec,
  IKernelOptions,
  ITrainingModel
} from '../tokens';
import { OPTIONS } from './fixtures';
import { plainText, withCode } from '../components/text';
import { JobForm } from '../training/form';
import { TrainingPanel } from '../training/panel';
import { JobView } from '../training/widget';
import {
  allowedOr,
  IFormValues,
  jobChoiceLabel,
  JobFormModel,
  LogFollower,
  parseArgs,
  parseParameters,
  sparklinePoints,
  specFromForm,
  statusLine,
  TrainingModel
} from '../training/model';

function makeJob(overrides: Partial<IJob> = {}): IJob {
  return {
    id: '0123456789ab',
    name: 'train.py',
    user: 'ada',
    status: 'running',
    reason: '',
    queue_reason: '',
    spec: { script: 'train.py' },
    image: 'pytorch',
    size: 'small',
    attempt: 1,
    max_retries: 2,
    created: '2026-12-02T05:00:00+00:00',
    started: '2026-12-02T05:00:01+00:00',
    finished: null,
    replicas: [{ name: 'worker-0', running: true, exit_code: null }],
    dirs: {
      home: 'studiohub-jobs/0123456789ab',
      code: 'studiohub-jobs/0123456789ab/code',
      outputs: 'studiohub-jobs/0123456789ab/outputs',
      checkpoints: 'studiohub-jobs/0123456789ab/checkpoints',
      tensorboard: 'studiohub-jobs/0123456789ab/tensorboard'
    },
    ...overrides
  };
}

const VALUES: IFormValues = {
  path: 'work/train.py',
  image: 'pytorch',
  size: 'small',
  workers: 2,
  parameters: '',
  args: '--epochs 3 --name "my run"',
  maxRetries: 1,
  timeout: '1h'
};

const tick = (ms = 0) => new Promise(resolve => setTimeout(resolve, ms));

describe('the training model', () => {
  it('polls the list and tells the views of every status change', async () => {
    const answers = [
      {
        jobs: [makeJob({ status: 'queued', queue_reason: 'quota: 2 running' })]
      },
      { jobs: [makeJob({ status: 'running' })] },
      {
        jobs: [
          makeJob({
            status: 'succeeded',
            finished: '2026-12-02T05:01:00+00:00'
          })
        ]
      }
    ];
    const seen: string[] = [];
    const request = jest.fn(async (endPoint: string) => {
      seen.push(endPoint);
      return answers[Math.min(seen.length - 1, answers.length - 1)] as any;
    });
    const model = new TrainingModel({
      request: request as any,
      refreshInterval: 0.02
    });
    const statuses: string[] = [];
    model.changed.connect(() => statuses.push(model.jobs[0]?.status));
    await tick(150);
    model.dispose();
    expect(seen[0]).toBe('training/jobs');
    expect(statuses.slice(0, 3)).toEqual(['queued', 'running', 'succeeded']);
    expect(
      statusLine(
        makeJob({ status: 'queued', queue_reason: 'quota: 2 running' })
      )
    ).toBe('queued: quota: 2 running');
  });

  it('keeps the last list and says why a refresh failed', async () => {
    let fail = false;
    const model = new TrainingModel({
      request: (async () => {
        if (fail) {
          throw new StudioHubAPIError(503, 'training jobs are not available');
        }
        return { jobs: [makeJob()] };
      }) as any,
      refreshInterval: 1000
    });
    await model.refresh();
    fail = true;
    await expect(model.refresh()).rejects.toThrow('not available');
    expect(model.jobs).toHaveLength(1);
    expect(model.error).toBe('training jobs are not available');
    model.dispose();
  });

  it('submits, cancels and reruns through the training routes', async () => {
    const calls: [string, RequestInit | undefined][] = [];
    const model = new TrainingModel({
      request: (async (endPoint: string, init?: RequestInit) => {
        calls.push([endPoint, init]);
        if (endPoint.endsWith('/rerun')) {
          return makeJob({ id: 'ba9876543210', status: 'queued' });
        }
        if (endPoint.endsWith('/cancel')) {
          return makeJob({ status: 'cancelled', reason: 'cancelled by ada' });
        }
        return makeJob({ status: 'queued' });
      }) as any,
      refreshInterval: 1000
    });
    const spec: IJobSpec = { script: 'train.py' };
    await model.submit(spec);
    expect(calls[0]).toEqual([
      'training/jobs',
      { method: 'POST', body: JSON.stringify(spec) }
    ]);
    await model.cancel('0123456789ab');
    expect(model.find('0123456789ab')?.reason).toBe('cancelled by ada');
    expect(statusLine(model.find('0123456789ab')!)).toBe('cancelled by ada');
    expect(
      statusLine(
        makeJob({
          status: 'failed',
          reason: 'exit code 2 (worker-0)',
          attempt: 2
        })
      )
    ).toBe('failed (attempt 2 of 3): exit code 2 (worker-0)');
    await model.rerun('0123456789ab');
    expect(model.jobs.map(j => j.id)).toEqual(['ba9876543210', '0123456789ab']);
    expect(calls.map(c => c[0]).slice(1)).toEqual([
      'training/jobs/0123456789ab/cancel',
      'training/jobs/0123456789ab/rerun'
    ]);
    expect(model.logDownloadUrl('0123456789ab', 'worker-1', 2)).toBe(
      'http://localhost/studiohub/api/v1/training/jobs/0123456789ab/logs?replica=worker-1&attempt=2&download=1'
    );
    model.dispose();
  });
});

describe('deleting a finished job', () => {
  const running = makeJob();
  const done = makeJob({
    id: 'ba9876543210',
    name: 'old.py',
    status: 'succeeded',
    finished: '2026-12-02T05:01:00+00:00'
  });

  function listModel(calls: [string, RequestInit | undefined][]) {
    return new TrainingModel({
      request: (async (endPoint: string, init?: RequestInit) => {
        calls.push([endPoint, init]);
        return init?.method === 'DELETE' ? '' : { jobs: [running, done] };
      }) as any,
      refreshInterval: 1000
    });
  }

  it('asks the service, with outputs only when asked, and drops the job from the list', async () => {
    const calls: [string, RequestInit | undefined][] = [];
    const model = listModel(calls);
    await model.refresh();
    let changes = 0;
    model.changed.connect(() => changes++);
    await model.delete(done.id);
    expect(calls[1]).toEqual([
      'training/jobs/ba9876543210',
      { method: 'DELETE' }
    ]);
    expect(model.jobs.map(j => j.id)).toEqual([running.id]);
    expect(changes).toBe(1);
    await model.delete(done.id, true);
    expect(calls[2][0]).toBe('training/jobs/ba9876543210?outputs=true');
    model.dispose();
  });

  it('keeps the job when the service refuses', async () => {
    const model = new TrainingModel({
      request: (async (_: string, init?: RequestInit) => {
        if (init?.method === 'DELETE') {
          throw new StudioHubAPIError(
            409,
            'job 0123456789ab is running: cancel it first, then delete it'
          );
        }
        return { jobs: [running] };
      }) as any,
      refreshInterval: 1000
    });
    await model.refresh();
    await expect(model.delete(running.id)).rejects.toThrow('cancel it first');
    expect(model.jobs).toHaveLength(1);
    model.dispose();
  });

  it('the sidebar offers Cancel on a running job and Delete on a finished one', async () => {
    const model = listModel([]);
    await model.refresh();
    const commands = new CommandRegistry();
    const executed: [string, unknown][] = [];
    for (const id of [
      CommandIDs.cancelTrainingJob,
      CommandIDs.deleteTrainingJob,
      CommandIDs.openTrainingJob
    ]) {
      commands.addCommand(id, {
        execute: args => executed.push([id, args.id])
      });
    }
    const panel = new TrainingPanel({
      model,
      commands,
      kernelOptions: () => OPTIONS
    });
    // Two runs of one script differ by their submit time and id; labels, not ids.
    const row = panel.node.querySelector(
      '[aria-label="Training job train.py (0123456789ab)"]'
    )!;
    expect(
      row.querySelector('.jp-StudioHub-TrainingPanel-submitted')!.textContent
    ).toMatch(/^submitted .+ · 0123456789ab$/);
    expect(
      row.querySelector('.jp-StudioHub-TrainingPanel-when')!.textContent
    ).toMatch(/^PyTorch 2\.13 · CPU · 1 vCPU \+ 2 GiB/);
    const button = (label: string) =>
      panel.node.querySelector<HTMLButtonElement>(`[aria-label="${label}"]`);
    expect(button('Delete training job train.py (0123456789ab)')).toBeNull();
    expect(button('Cancel training job old.py (ba9876543210)')).toBeNull();
    button('Cancel training job train.py (0123456789ab)')!.click();
    button('Delete training job old.py (ba9876543210)')!.click();
    await tick();
    expect(executed).toEqual([
      [CommandIDs.cancelTrainingJob, running.id],
      [CommandIDs.deleteTrainingJob, done.id]
    ]);
    await model.delete(done.id);
    expect(
      panel.node.querySelector(
        '[aria-label="Training job old.py (ba9876543210)"]'
      )
    ).toBeNull();
    panel.dispose();
    model.dispose();
  });

  it('the job tab shows Delete only once the job is over', async () => {
    let job = running;
    const deleted: string[] = [];
    const model = {
      get: async () => job,
      events: async () => [],
      metrics: async () => ({ tags: {} }),
      logs: async () => new Uint8Array(),
      logDownloadUrl: () => 'http://localhost/log'
    } as unknown as ITrainingModel;
    const view = new JobView({
      jobId: running.id,
      model,
      interval: 60_000,
      actions: {
        cancel: () => undefined,
        rerun: () => undefined,
        tensorboard: () => undefined,
        outputs: () => undefined,
        delete: id => deleted.push(id)
      }
    });
    const del = () =>
      view.node.querySelector<HTMLButtonElement>(
        '[aria-label="Delete this job"]'
      )!;
    const cancel = () =>
      view.node.querySelector<HTMLButtonElement>(
        '[aria-label="Cancel this job"]'
      )!;
    await view.refresh();
    await tick(10);
    expect([del().hidden, cancel().hidden]).toEqual([true, false]);
    job = { ...running, status: 'failed', reason: 'exit code 2 (worker-0)' };
    await view.refresh();
    await tick(10);
    expect([del().hidden, cancel().hidden]).toEqual([false, true]);
    del().click();
    expect(deleted).toEqual([running.id]);
    view.dispose();
  });

  it('the job tab offers Deploy as Endpoint… once the job succeeded with a model', async () => {
    let job = makeJob();
    const deployed: string[] = [];
    const asked: string[] = [];
    const model = {
      get: async () => job,
      events: async () => [],
      metrics: async () => ({ tags: {} }),
      logs: async () => new Uint8Array(),
      logDownloadUrl: () => 'http://localhost/log'
    } as unknown as ITrainingModel;
    const view = (hasModel: boolean) =>
      new JobView({
        jobId: job.id,
        model,
        interval: 60_000,
        actions: {
          cancel: () => undefined,
          rerun: () => undefined,
          tensorboard: () => undefined,
          outputs: () => undefined,
          delete: () => undefined,
          deploy: j => deployed.push(j.id),
          canDeploy: async j => {
            asked.push(j.id);
            return hasModel;
          }
        }
      });
    const withModel = view(true);
    const deploy = () =>
      withModel.node.querySelector<HTMLButtonElement>(
        '[aria-label="Deploy as Endpoint…"]'
      )!;
    await withModel.refresh();
    await tick(10);
    expect(deploy().hidden).toBe(true); // running
    expect(asked).toEqual([]);
    job = makeJob({ status: 'failed', reason: 'exit code 1 (worker-0)' });
    await withModel.refresh();
    await tick(10);
    expect(deploy().hidden).toBe(true);
    job = makeJob({ status: 'succeeded' });
    await withModel.refresh();
    await tick(10);
    expect(deploy().hidden).toBe(false);
    await withModel.refresh();
    await tick(10);
    expect(asked).toEqual([job.id]); // asked once
    deploy().click();
    expect(deployed).toEqual([job.id]);
    withModel.dispose();
    // Nothing to deploy in the outputs: not offered.
    const empty = view(false);
    await empty.refresh();
    await tick(10);
    expect(
      empty.node.querySelector<HTMLButtonElement>(
        '[aria-label="Deploy as Endpoint…"]'
      )!.hidden
    ).toBe(true);
    empty.dispose();
  });
});

describe('following a log', () => {
  it('asks only for what came after the bytes already shown', async () => {
    const log = new TextEncoder().encode('epoch 1 loss 0.9\nepoch 2 λ=0.5\n');
    // The log grows in three pieces; the second ends inside the two bytes of "λ".
    const cuts = [17, 26, log.length];
    const offsets: number[] = [];
    let written = 0;
    const model = {
      logs: async (
        id: string,
        replica: string,
        attempt: number,
        offset: number
      ) => {
        expect([id, replica, attempt]).toEqual(['0123456789ab', 'worker-1', 2]);
        offsets.push(offset);
        return log.slice(offset, cuts[Math.min(written++, cuts.length - 1)]);
      }
    };
    const follower = new LogFollower(model, '0123456789ab', 'worker-1', 2);
    const added: string[] = [];
    follower.changed.connect((_, text) => added.push(text));
    await follower.poll();
    await follower.poll();
    await follower.poll();
    expect(await follower.poll()).toBe('');
    expect(offsets).toEqual([0, 17, 26, log.length]);
    expect(follower.offset).toBe(log.length);
    expect(follower.text).toBe('epoch 1 loss 0.9\nepoch 2 λ=0.5\n');
    expect(added[0]).toBe('epoch 1 loss 0.9\n');
    expect(added.join('')).not.toContain('\ufffd');
  });
});

describe('the Run as Training Job… form', () => {
  it('shows the service’s refusal before submit, and only for the latest values', async () => {
    const checked: IJobSpec[] = [];
    const check = jest.fn(async (spec: IJobSpec) => {
      checked.push(spec);
      await tick(spec.size === 'large' ? 30 : 0);
      return spec.size === 'large'
        ? "no room: size 'large' needs 8 GiB, 2 GiB are free"
        : spec.size === 'gpu'
          ? "size 'gpu' is not offered to your domains"
          : null;
    });
    const form = new JobFormModel({ check }, VALUES, 10);
    expect(await form.checkNow()).toEqual({
      ok: true,
      message: 'Ready to run: it can start now.'
    });
    // Typing fast: only the last value is checked, after the pause.
    form.update({ size: 'large' });
    form.update({ size: 'gpu' });
    expect(form.verdict).toBeNull();
    await tick(60);
    expect(checked.map(s => s.size)).toEqual(['small', 'gpu']);
    expect(form.verdict).toEqual({
      ok: false,
      message: "size 'gpu' is not offered to your domains"
    });
    // A slow answer to older values does not overwrite a newer one.
    form.update({ size: 'large' });
    await tick(15);
    form.update({ size: 'small' });
    await tick(80);
    expect(form.verdict?.ok).toBe(true);
    form.dispose();
  });

  it('says what is wrong in a field without asking the service', async () => {
    const check = jest.fn(async () => null);
    const form = new JobFormModel(
      { check },
      { ...VALUES, path: 'nb.ipynb', parameters: 'lr=0.1\nnot a parameter' },
      10
    );
    expect(await form.checkNow()).toEqual({
      ok: false,
      message:
        'parameters, line 2: write name=value (a Python name), not "not a parameter"'
    });
    expect(check).not.toHaveBeenCalled();
    form.dispose();
  });

  it('turns the fields into a spec', () => {
    expect(specFromForm(VALUES)).toEqual({
      name: 'train.py',
      script: 'work/train.py',
      image: 'pytorch',
      size: 'small',
      workers: 2,
      max_retries: 1,
      args: ['--epochs', '3', '--name', 'my run'],
      timeout: '1h'
    });
    expect(
      specFromForm({
        ...VALUES,
        path: 'nb.ipynb',
        parameters: 'lr = 0.01\nepochs=5\nname="big run"\nfast=true\n',
        timeout: '3600'
      })
    ).toEqual({
      name: 'nb.ipynb',
      notebook: 'nb.ipynb',
      image: 'pytorch',
      size: 'small',
      workers: 2,
      max_retries: 1,
      parameters: { lr: 0.01, epochs: 5, name: 'big run', fast: true },
      timeout: 3600
    });
    expect(parseArgs(`a 'b c' "d'e" ''`)).toEqual(['a', 'b c', "d'e", '']);
    expect(() => parseArgs('"open')).toThrow('args: a " quote is not closed');
    expect(parseParameters('\n\n')).toEqual({});
  });
});

describe('the form’s images and sizes', () => {
  const BUILD = 'not built here: run `studiohub env build tensorflow`';
  const options: IKernelOptions = {
    ...OPTIONS,
    images: [
      ...OPTIONS.images,
      { ...OPTIONS.images[1], id: 'tensorflow', label: 'TensorFlow 2.18 · CPU' }
    ],
    unavailable: {
      ...OPTIONS.unavailable,
      'tensorflow/small': BUILD,
      'tensorflow/medium': BUILD,
      'tensorflow/large': BUILD
    }
  };
  const select = (form: JobForm, name: string) =>
    form.node.querySelector<HTMLSelectElement>(`select[name="${name}"]`)!;
  const option = (form: JobForm, name: string, value: string) =>
    Array.from(select(form, name).options).find(o => o.value === value)!;

  it('disables an unbuilt image and a size too big, each with its reason, as the picker does', async () => {
    const check = jest.fn(async () => null);
    const model = new JobFormModel({ check }, VALUES, 10);
    const form = new JobForm(model, options);
    const tensorflow = option(form, 'image', 'tensorflow');
    expect(tensorflow.disabled).toBe(true);
    expect(tensorflow.text).toBe(
      'TensorFlow 2.18 · CPU (not built here: run studiohub env build tensorflow)'
    );
    expect(option(form, 'image', 'pytorch').disabled).toBe(false);
    const large = option(form, 'size', 'large');
    expect(large.disabled).toBe(true);
    expect(large.text).toBe(
      '4 vCPU + 16 GiB (needs 16 GiB; only 6 GiB is free)'
    );
    // Base can run large: choosing it enables the size again.
    select(form, 'image').value = 'base';
    select(form, 'image').dispatchEvent(new Event('change'));
    expect(option(form, 'size', 'large').disabled).toBe(false);
    expect(model.values.image).toBe('base');
    form.dispose();
  });

  it('moves a prefilled choice that cannot run to one that can', async () => {
    const check = jest.fn(async () => null);
    const model = new JobFormModel(
      { check },
      { ...VALUES, image: 'tensorflow', size: 'large' },
      10
    );
    const form = new JobForm(model, options);
    expect(model.values.image).toBe('base');
    expect(model.values.size).toBe('large');
    form.dispose();
  });

  it('shows backticked commands as code, not backticks', () => {
    const parts = withCode('run `studiohub env build tensorflow` first');
    expect(parts[0]).toBe('run ');
    expect((parts[1] as HTMLElement).tagName).toBe('CODE');
    expect((parts[1] as HTMLElement).textContent).toBe(
      'studiohub env build tensorflow'
    );
    expect(parts[2]).toBe(' first');
    expect(plainText('a `b` c')).toBe('a b c');
  });

  it('names a job’s image and size by their catalog labels', () => {
    expect(jobChoiceLabel({ image: 'pytorch', size: 'medium' }, OPTIONS)).toBe(
      'PyTorch 2.13 · CPU · 2 vCPU + 4 GiB'
    );
    expect(jobChoiceLabel({ image: 'gone', size: 'medium' }, null)).toBe(
      'gone · medium'
    );
    expect(jobChoiceLabel({ image: null, size: null }, OPTIONS)).toBe('');
  });
});

describe('metric curves', () => {
  it('fit the points in the box, higher values higher up', () => {
    expect(
      sparklinePoints(
        [
          [0, 1],
          [10, 0]
        ],
        100,
        20
      )
    ).toBe('0.0,0.0 100.0,20.0');
    expect(sparklinePoints([[5, 3]], 100, 20)).toBe('50.0,10.0');
    expect(sparklinePoints([], 100, 20)).toBe('');
  });
});

describe('allowedOr', () => {
  it('keeps the saved choice only while the domains allow it', () => {
    const sizes = ['small', 'tiny'];
    expect(allowedOr('tiny', 'small', sizes)).toBe('tiny');
    // saved in another domain: the server's size, else the first allowed one
    expect(allowedOr('medium', 'small', sizes)).toBe('small');
    expect(allowedOr('medium', 'giant', sizes)).toBe('');
    expect(allowedOr(undefined, undefined, undefined)).toBe('');
    expect(allowedOr('medium', undefined, undefined)).toBe('medium');
  });
});
