import { nearestChoice, unavailableReason } from '../switcher/choices';
import { choiceLabel, formatBytes, usageLabel } from '../switcher/labels';
import { startRefusal } from '../switcher/session';
import { IKernelReport } from '../tokens';
import { GIB, OPTIONS } from './fixtures';

const options = OPTIONS;

function report(partial: Partial<IKernelReport['usage']> = {}): IKernelReport {
  return {
    id: 'k',
    choice: {
      image: 'pytorch',
      size: 'medium',
      image_label: null,
      size_label: '2 vCPU + 4 GiB',
      limits: { cpus: 2, memory: 4 * GIB, gpus: 0 },
      placed: true
    },
    usage: {
      cpu_percent: 12.4,
      memory: 300 * 1024 ** 2,
      memory_limit: 4 * GIB,
      gpu_memory: null,
      ...partial
    },
    last_exit: null,
    fallback: null
  };
}

describe('switcher model', () => {
  it('says why a pair is unavailable, and nothing for one that can run', () => {
    expect(unavailableReason(options, 'pytorch', 'large')).toBe(
      'needs 16 GiB; only 6 GiB is free'
    );
    expect(unavailableReason(options, 'base', 'large')).toBeNull();
  });

  it('offers the nearest size that can run the image', () => {
    expect(nearestChoice(options, { image: 'pytorch', size: 'large' })).toEqual(
      {
        image: 'pytorch',
        size: 'medium'
      }
    );
    // A size the user may not use at all: closest by memory to what was asked.
    expect(
      nearestChoice(
        options,
        { image: 'pytorch', size: 'huge' },
        { id: 'huge', label: '', cpus: 1, memory: 3 * GIB, gpus: 0 }
      )
    ).toEqual({ image: 'pytorch', size: 'medium' });
    // An image the user may not use: the server's image instead.
    expect(nearestChoice(options, { image: 'mxnet', size: 'large' })).toEqual({
      image: 'base',
      size: 'large'
    });
  });

  it('prints bytes the way size labels do', () => {
    expect(formatBytes(512 * 1024 ** 2)).toBe('512 MiB');
    expect(formatBytes(4 * GIB)).toBe('4 GiB');
    expect(formatBytes(1.5 * GIB)).toBe('1.5 GiB');
    expect(formatBytes(0)).toBe('0 B');
  });

  it('labels the toolbar with image, size and live usage', () => {
    expect(choiceLabel(report(), options)).toBe(
      'PyTorch 2.13 · CPU · 2 vCPU + 4 GiB'
    );
    expect(usageLabel(report())).toBe('CPU 12% · 300 MiB / 4 GiB');
    expect(usageLabel(report({ gpu_memory: 2 * GIB }))).toBe(
      'CPU 12% · 300 MiB / 4 GiB · GPU 2 GiB'
    );
    expect(usageLabel(report({ cpu_percent: null, memory: null }))).toBe('');
  });

  it("unwraps the reason from Jupyter server's failed kernel change", () => {
    const reason = "needs 9 GiB; 2 GiB of this machine's memory is free";
    expect(
      startRefusal(
        `The 'studiohub-tensorflow' kernel could not be started: "${reason}"`
      )
    ).toBe(reason);
    expect(
      startRefusal("The 'x' kernel could not be started: 'no GPU is free'")
    ).toBe('no GPU is free');
    expect(startRefusal('Session is disposed')).toBe('Session is disposed');
  });
});
