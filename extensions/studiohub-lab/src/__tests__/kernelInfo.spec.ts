import { onlyKernelInfoDiffers } from '../sharing/kernelInfo';

type Notebook = Parameters<typeof onlyKernelInfoDiffers>[0];

/** A copy as the sharing service wrote it: saved before any kernel answered. */
function copied(): Notebook {
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: {
        name: 'studiohub-base',
        display_name: 'Base Python 3.11 · CPU',
        language: 'python'
      },
      language_info: { name: '' },
      studiohub: { image: 'base', size: 'tiny' }
    },
    cells: [
      {
        cell_type: 'code',
        id: 'fit',
        source: "print('mape', 0.07)",
        metadata: {},
        outputs: [],
        execution_count: null
      }
    ]
  };
}

describe('a notebook changed only by its kernel connecting', () => {
  it("is unchanged when only the kernel's language_info and labels came in", () => {
    const opened = copied();
    opened.metadata.language_info = {
      name: 'python',
      version: '3.11.2',
      codemirror_mode: { name: 'ipython', version: 3 }
    };
    opened.metadata.kernelspec = {
      name: 'studiohub-base',
      display_name: 'Base Python 3.11 · CPU (renamed)',
      language: 'python'
    };
    expect(onlyKernelInfoDiffers(copied(), opened)).toBe(true);
  });

  it('is changed by an edit, another kernel, or another image and size', () => {
    const edited = copied();
    (edited.cells[0] as { source: string }).source = "print('mape', 0.08)";
    expect(onlyKernelInfoDiffers(copied(), edited)).toBe(false);

    const otherKernel = copied();
    otherKernel.metadata.kernelspec = {
      name: 'studiohub-pytorch',
      display_name: 'PyTorch',
      language: 'python'
    };
    expect(onlyKernelInfoDiffers(copied(), otherKernel)).toBe(false);

    const switched = copied();
    switched.metadata.studiohub = { image: 'base', size: 'small' };
    expect(onlyKernelInfoDiffers(copied(), switched)).toBe(false);
  });
});
