import { StudioHubAPIError } from '../api';
import { afterSwitch } from '../switcher/executions';
import {
  NotebookKernelModel,
  STILL_SWITCHING,
  SwitcherModel
} from '../switcher/model';
import {
  IChoice,
  IKernelNotice,
  IKernelReport,
  INotebookKernel,
  INotebookSession
} from '../tokens';
import { GIB, OPTIONS } from './fixtures';

function report(
  id: string,
  choice: Partial<IChoice> = {},
  extra: Partial<IKernelReport> = {}
): IKernelReport {
  return {
    id,
    choice: {
      image: choice.image ?? 'base',
      size: choice.size ?? 'small',
      image_label: null,
      size_label: null,
      limits: { cpus: 1, memory: 2 * GIB, gpus: 0 },
      placed: true
    },
    usage: {
      cpu_percent: 1,
      memory: 1,
      memory_limit: 2 * GIB,
      gpu_memory: null
    },
    last_exit: null,
    fallback: null,
    ...extra
  };
}

type Handler = (init: RequestInit | undefined) => unknown | Promise<unknown>;

/**
 * A fake server extension: each call is recorded; `routes` answers by end point (the
 * part before `?`), a thrown error is the server's refusal.
 */
function fakeServer(routes: Record<string, Handler>) {
  const calls: Array<{ endPoint: string; body: any }> = [];
  const request = (async (endPoint: string, init?: RequestInit) => {
    calls.push({
      endPoint,
      body: init?.body ? JSON.parse(init.body as string) : undefined
    });
    const route = Object.keys(routes).find(
      key => endPoint.split('?')[0] === key
    );
    if (!route) {
      throw new StudioHubAPIError(404, `no route ${endPoint}`);
    }
    return routes[route](init);
  }) as any;
  return { calls, request };
}

/**
 * A notebook's session: runs `kernel` until a restart succeeds; `refuse` makes the
 * next restart fail as Jupyter server's sessions PATCH answers a refused placement.
 */
class FakeSession implements INotebookSession {
  path = 'work/train.ipynb';
  name = 'train.ipynb';
  kernel: string | null = 'k1';
  saved: IChoice | null = null;
  restarts: Array<[string, string | null]> = [];
  refuse: string | null = null;
  restartGate: Promise<void> = Promise.resolve();

  savedChoice(): IChoice | null {
    return this.saved;
  }
  saveChoice(choice: IChoice): void {
    this.saved = choice;
  }
  async liveKernel(): Promise<string | null> {
    return this.kernel;
  }
  async restart(kernelName: string, old: string | null): Promise<void> {
    this.restarts.push([kernelName, old]);
    await this.restartGate;
    if (this.refuse) {
      throw new Error(this.refuse);
    }
    this.kernel = 'k2';
  }
}

/** Wait (a few event-loop turns at most) until `ready` holds. */
async function until(ready: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ready(); i++) {
    await new Promise(resolve => setTimeout(resolve, 5));
  }
  expect(ready()).toBe(true);
}

const TIMING = { usageInterval: 3600_000, exitInterval: 1, exitAttempts: 3 };

/** A switcher on the fake server, polling too rarely to get in a spec's way. */
function model(server: ReturnType<typeof fakeServer>): SwitcherModel {
  return new SwitcherModel({ request: server.request, timing: TIMING });
}

function verdict(choice: IChoice) {
  return {
    ...choice,
    kernel_name: `studiohub-${choice.image}`,
    image_label: choice.image === 'pytorch' ? 'PyTorch 2.13 · CPU' : 'Base',
    size_label:
      OPTIONS.sizes.find(s => s.id === choice.size)?.label ?? choice.size
  };
}

describe('SwitcherModel', () => {
  let kernels: INotebookKernel[] = [];
  const track = (
    switcher: SwitcherModel,
    session: INotebookSession,
    notebook: object = {}
  ) => {
    const kernel = switcher.track(notebook, session);
    kernels.push(kernel);
    return kernel;
  };
  afterEach(() => {
    kernels.forEach(k => k.dispose());
    kernels = [];
  });

  it('asks for the options counting the replaced kernel as gone, and keeps them', async () => {
    const server = fakeServer({ 'kernel-options': () => OPTIONS });
    const switcher = new SwitcherModel({ request: server.request });
    expect(switcher.options).toBeNull();
    await switcher.loadOptions('k 1');
    expect(server.calls[0].endPoint).toBe('kernel-options?replacing=k%201');
    expect(switcher.options).toEqual(OPTIONS);
    await switcher.loadOptions();
    expect(server.calls[1].endPoint).toBe('kernel-options');
  });

  it('keeps one model per notebook', () => {
    const switcher = new SwitcherModel({ timing: TIMING });
    const notebook = {};
    const session = new FakeSession();
    const kernel = track(switcher, session, notebook);
    expect(switcher.track(notebook, new FakeSession())).toBe(kernel);
    expect(switcher.find(notebook)).toBe(kernel);
    expect(switcher.find({})).toBeUndefined();
  });

  it('switches: records the choice, shows it pending, restarts that kernel, saves the choice', async () => {
    const session = new FakeSession();
    let open!: () => void;
    session.restartGate = new Promise(resolve => (open = resolve));
    const server = fakeServer({
      'kernel-choices': init => verdict(JSON.parse(init!.body as string)),
      'kernels/k1': () => report('k1'),
      'kernels/k2': () => report('k2', { image: 'pytorch' })
    });
    const switcher = model(server);
    const kernel = track(switcher, session);
    const done = kernel.switchTo({ image: 'pytorch', size: 'small' });
    expect(kernel.switching).toBe(true);
    await until(() => session.restarts.length === 1);
    expect(server.calls[0]).toEqual({
      endPoint: 'kernel-choices',
      body: {
        path: 'work/train.ipynb',
        image: 'pytorch',
        size: 'small',
        replaces: 'k1'
      }
    });
    expect(kernel.pending).toBe(
      'Switching to PyTorch 2.13 · CPU · 1 vCPU + 2 GiB…'
    );
    expect(session.restarts[0]).toEqual(['studiohub-pytorch', 'k1']);
    expect(session.saved).toBeNull(); // not before the new kernel runs
    open();
    await expect(done).resolves.toBe('PyTorch 2.13 · CPU · 1 vCPU + 2 GiB');
    expect(kernel.switching).toBe(false);
    expect(session.saved).toEqual({ image: 'pytorch', size: 'small' });
    // The pending label stays until the new kernel's own report.
    expect(kernel.pending).not.toBeNull();
    kernel.kernelId = 'k2';
    await until(() => kernel.report?.id === 'k2');
    expect(kernel.pending).toBeNull();
    expect(kernel.report!.choice.image).toBe('pytorch');
  });

  it('holds cells run during a switch until the new kernel runs, then runs each once there', async () => {
    const session = new FakeSession();
    let open!: () => void;
    session.restartGate = new Promise(resolve => (open = resolve));
    const server = fakeServer({
      'kernel-choices': init => verdict(JSON.parse(init!.body as string)),
      'kernels/k1': () => report('k1'),
      'kernels/k2': () => report('k2', { image: 'pytorch' })
    });
    const kernel = track(model(server), session) as NotebookKernelModel;
    expect(kernel.switched).toBeNull(); // no switch: cells run at once
    const done = kernel.switchTo({ image: 'pytorch', size: 'small' });
    // Held from the click on, before any answer of the server.
    const switched = kernel.switched;
    expect(switched).not.toBeNull();
    const ranOn: string[] = [];
    const refused: string[] = [];
    const run = () =>
      afterSwitch(
        kernel.switched,
        async () => {
          ranOn.push(session.kernel!);
          return session.kernel;
        },
        reason => refused.push(reason)
      );
    const first = run();
    await until(() => session.restarts.length === 1);
    const second = run(); // during the sessions PATCH
    await new Promise(resolve => setTimeout(resolve, 20));
    expect(ranOn).toEqual([]); // never on the old kernel k1
    open();
    await expect(first).resolves.toBe('k2');
    await expect(second).resolves.toBe('k2');
    await done;
    expect(ranOn).toEqual(['k2', 'k2']); // each once, in order
    expect(refused).toEqual([]);
    expect(kernel.switched).toBeNull();
    await run();
    expect(ranOn).toEqual(['k2', 'k2', 'k2']);
  });

  it('refuses, with the reason, cells run during a switch that fails; none runs', async () => {
    const session = new FakeSession();
    session.refuse = 'no room for 4 vCPU + 16 GiB: 1 vCPU free';
    const server = fakeServer({
      'kernel-choices': init => verdict(JSON.parse(init!.body as string)),
      'kernels/k1': () => report('k1')
    });
    const kernel = track(model(server), session) as NotebookKernelModel;
    const done = kernel.switchTo({ image: 'pytorch', size: 'small' });
    const ran: string[] = [];
    const refused: string[] = [];
    const held = afterSwitch(
      kernel.switched,
      async () => ran.push(session.kernel!),
      reason => refused.push(reason)
    );
    await expect(done).rejects.toThrow('no room');
    await expect(held).rejects.toThrow(/^Canceled: A cell was not run/);
    expect(ran).toEqual([]);
    expect(refused).toEqual(['no room for 4 vCPU + 16 GiB: 1 vCPU free']);
    expect(kernel.switched).toBeNull();
  });

  it('starts a kernel the usual way for a notebook that runs none', async () => {
    const session = new FakeSession();
    session.kernel = null;
    const server = fakeServer({
      'kernel-choices': init => verdict(JSON.parse(init!.body as string))
    });
    const switcher = model(server);
    const kernel = track(switcher, session);
    await kernel.switchTo({ image: 'base', size: 'small' });
    expect(server.calls[0].body.replaces).toBe('');
    expect(session.restarts).toEqual([['studiohub-base', null]]);
  });

  it('refuses a second switch of the notebook while the first runs', async () => {
    const session = new FakeSession();
    let open!: () => void;
    session.restartGate = new Promise(resolve => (open = resolve));
    const server = fakeServer({
      'kernel-choices': init => verdict(JSON.parse(init!.body as string))
    });
    const switcher = model(server);
    const kernel = track(switcher, session);
    const first = kernel.switchTo({ image: 'pytorch', size: 'small' });
    await expect(
      kernel.switchTo({ image: 'base', size: 'large' })
    ).rejects.toThrow(STILL_SWITCHING);
    open();
    await first;
    expect(
      server.calls.filter(c => c.endPoint === 'kernel-choices')
    ).toHaveLength(1);
    expect(session.restarts).toHaveLength(1);
    // Once done, the notebook can switch again.
    await kernel.switchTo({ image: 'base', size: 'small' });
    expect(session.restarts).toHaveLength(2);
  });

  it("a start the hub refuses: the hub's reason as is, the old kernel shown again, nothing saved", async () => {
    const session = new FakeSession();
    const reason =
      "no room for 4 vCPU + 16 GiB: 6 GiB of this machine's memory is free";
    session.refuse = reason;
    const server = fakeServer({
      'kernel-choices': init => verdict(JSON.parse(init!.body as string)),
      'kernels/k1': () => report('k1')
    });
    const switcher = model(server);
    const kernel = track(switcher, session);
    kernel.kernelId = 'k1';
    await until(() => kernel.report !== null);
    const seen: Array<string | null> = [];
    kernel.changed.connect(() => seen.push(kernel.pending));
    await expect(
      kernel.switchTo({ image: 'base', size: 'large' })
    ).rejects.toThrow(reason);
    expect(kernel.switching).toBe(false);
    expect(kernel.pending).toBeNull();
    expect(seen).toContain('Switching to Base · 4 vCPU + 16 GiB…');
    expect(session.saved).toBeNull();
    expect(kernel.report!.id).toBe('k1');
    expect(kernel.kernelId).toBe('k1');
  });

  it('a choice the server refuses to record restarts nothing', async () => {
    const session = new FakeSession();
    const server = fakeServer({
      'kernel-choices': () => {
        throw new StudioHubAPIError(
          400,
          "unknown size 'huge': allowed are small, medium, large"
        );
      }
    });
    const switcher = model(server);
    const kernel = track(switcher, session);
    await expect(
      kernel.switchTo({ image: 'base', size: 'huge' })
    ).rejects.toThrow("unknown size 'huge': allowed are small, medium, large");
    expect(session.restarts).toHaveLength(0);
    expect(kernel.pending).toBeNull();
    expect(kernel.switching).toBe(false);
  });

  it('drops a report about a kernel the notebook no longer runs', async () => {
    let answer!: (r: IKernelReport) => void;
    const server = fakeServer({
      'kernels/k1': () => new Promise(resolve => (answer = resolve)),
      'kernels/k2': () => report('k2')
    });
    const switcher = model(server);
    const kernel = track(switcher, new FakeSession());
    kernel.kernelId = 'k1';
    const late = kernel.refresh();
    await until(() => answer !== undefined);
    kernel.kernelId = 'k2';
    answer(report('k1'));
    await late;
    expect(kernel.report?.id).not.toBe('k1');
    await kernel.refresh();
    expect(kernel.report?.id).toBe('k2');
    kernel.kernelId = null;
    expect(kernel.report).toBeNull();
  });

  it('tells a death once, even when two notebooks share the kernel', async () => {
    let calls = 0;
    const exit = {
      reason: 'oom' as const,
      message: 'The kernel ran out of memory (limit 2 GiB).',
      time: '2026-12-02T04:00:00Z'
    };
    const server = fakeServer({
      // The server records the death a moment after the status says dead.
      'kernels/k1': () =>
        report('k1', {}, { last_exit: ++calls > 1 ? exit : null })
    });
    const switcher = model(server);
    const notices: IKernelNotice[] = [];
    for (const notebook of [{}, {}]) {
      const kernel = track(switcher, new FakeSession(), notebook);
      kernel.notice.connect((_, notice) => notices.push(notice));
      kernel.statusChanged('k1', 'dead');
    }
    await until(() => notices.length === 1);
    await new Promise(resolve => setTimeout(resolve, 30));
    expect(notices).toEqual([{ kind: 'exit', exit }]);
    // The same death seen again (another status) is not news.
    kernels[0].statusChanged('k1', 'autorestarting');
    await new Promise(resolve => setTimeout(resolve, 30));
    expect(notices).toHaveLength(1);
  });

  it('tells a refused saved choice once per kernel, with the nearest choice that can run', async () => {
    const server = fakeServer({
      'kernel-options': () => OPTIONS,
      'kernels/k1': () =>
        report(
          'k1',
          {},
          {
            fallback: {
              image: 'pytorch',
              size: 'large',
              reason: 'needs 16 GiB; only 6 GiB is free'
            }
          }
        )
    });
    const switcher = model(server);
    const kernel = track(switcher, new FakeSession());
    const notices: IKernelNotice[] = [];
    kernel.notice.connect((_, notice) => notices.push(notice));
    kernel.statusChanged('k1', 'idle');
    kernel.statusChanged('k1', 'busy');
    kernel.statusChanged('k1', 'idle');
    await until(() => notices.length === 1);
    await new Promise(resolve => setTimeout(resolve, 30));
    expect(notices).toEqual([
      {
        kind: 'fallback',
        fallback: {
          image: 'pytorch',
          size: 'large',
          reason: 'needs 16 GiB; only 6 GiB is free'
        },
        nearest: { image: 'pytorch', size: 'medium' }
      }
    ]);
  });

  it("tells of a saved image outside the user's domains, and of no other", async () => {
    const server = fakeServer({ 'kernel-options': () => OPTIONS });
    const switcher = model(server);
    const session = new FakeSession();
    const kernel = track(switcher, session);
    const notices: IKernelNotice[] = [];
    kernel.notice.connect((_, notice) => notices.push(notice));
    session.saved = { image: 'pytorch', size: 'small' };
    await kernel.checkSavedImage();
    expect(notices).toEqual([]);
    session.saved = { image: 'mxnet', size: 'large' };
    await kernel.checkSavedImage();
    expect(notices).toEqual([
      {
        kind: 'foreign-image',
        saved: { image: 'mxnet', size: 'large' },
        nearest: { image: 'base', size: 'large' }
      }
    ]);
  });

  it('opens the picker on the saved choice, else where the kernel runs, else the server', async () => {
    const server = fakeServer({
      'kernels/k1': () => report('k1', { image: 'pytorch', size: 'small' })
    });
    const switcher = model(server);
    const session = new FakeSession();
    const kernel = track(switcher, session);
    expect(kernel.shownChoice(OPTIONS)).toEqual({
      image: 'base',
      size: 'small'
    });
    kernel.kernelId = 'k1';
    await kernel.refresh();
    expect(kernel.shownChoice(OPTIONS)).toEqual({
      image: 'pytorch',
      size: 'small'
    });
    session.saved = { image: 'base', size: 'large' };
    expect(kernel.shownChoice(OPTIONS)).toEqual({
      image: 'base',
      size: 'large'
    });
  });
});
