import { ITensorBoard } from '../tokens';
import {
  TensorBoardModel,
  boardTitle,
  formatDuration
} from '../tensorboard/model';

const board = (id: string, status: ITensorBoard['status']): ITensorBoard => ({
  id,
  folders: ['~/runs/mnist'],
  runs: [{ name: 'mnist', folder: '~/runs/mnist' }],
  status,
  error: null,
  url: `/user/ada/studiohub/tensorboard/${id}/`,
  pid: 42,
  isolation: 'namespace',
  started: 0,
  uptime: 0,
  idle: 0
});

describe('formatDuration', () => {
  it.each([
    [0, '0 s'],
    [59.9, '59 s'],
    [60, '1 min'],
    [3600, '1 h'],
    [3900, '1 h 5 min'],
    [90000, '1 d 1 h']
  ])('%d s is %s', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});

describe('boardTitle', () => {
  it('names the folders by their last part', () => {
    expect(boardTitle(['~/runs/mnist/'])).toBe('TensorBoard: mnist');
    expect(boardTitle(['a/logs', 'b'])).toBe('TensorBoard: logs, b');
    expect(boardTitle(['.'])).toBe('TensorBoard: .');
  });
});

describe('TensorBoardModel', () => {
  it('posts the folders and keeps the answer first in the list', async () => {
    const calls: Array<[string, RequestInit | undefined]> = [];
    const request = (async (endPoint: string, init?: RequestInit) => {
      calls.push([endPoint, init]);
      if (endPoint === 'tensorboards') {
        return init?.method === 'POST'
          ? board('7', 'starting')
          : { tensorboards: [board('9', 'running')] };
      }
      return board('7', 'running');
    }) as any;
    const model = new TensorBoardModel({ request });
    const seen: number[] = [];
    model.changed.connect((_, boards) => seen.push(boards.length));
    await model.refresh();
    const started = await model.open(['runs/mnist']);
    expect(started.status).toBe('starting');
    expect(JSON.parse(calls[calls.length - 1][1]!.body as string)).toEqual({
      folders: ['runs/mnist']
    });
    const ready = await model.waitReady('7');
    expect(ready.status).toBe('running');
    expect(calls[calls.length - 1][0]).toBe('tensorboards/7?wait=ready');
    expect(model.tensorboards.map(b => b.id)).toEqual(['7', '9']);
    expect(seen.length).toBeGreaterThanOrEqual(3);
    model.dispose();
  });
});
