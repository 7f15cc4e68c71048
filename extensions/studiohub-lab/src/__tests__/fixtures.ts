import { IKernelOptions } from '../tokens';

export const GIB = 1024 ** 3;

/**
 * The options the hub would offer a user of two images and three sizes, one pair of
 * which has no room.
 */
export const OPTIONS: IKernelOptions = {
  images: [
    {
      id: 'base',
      label: 'Base Python 3.11 · CPU',
      display_name: 'Base Python',
      framework: 'Python',
      framework_version: '3.11',
      accelerator: 'cpu',
      kernel_name: 'studiohub-base',
      description: ''
    },
    {
      id: 'pytorch',
      label: 'PyTorch 2.13 · CPU',
      display_name: 'PyTorch',
      framework: 'PyTorch',
      framework_version: '2.13',
      accelerator: 'cpu',
      kernel_name: 'studiohub-pytorch',
      description: ''
    }
  ],
  sizes: [
    { id: 'small', label: '1 vCPU + 2 GiB', cpus: 1, memory: 2 * GIB, gpus: 0 },
    {
      id: 'medium',
      label: '2 vCPU + 4 GiB',
      cpus: 2,
      memory: 4 * GIB,
      gpus: 0
    },
    {
      id: 'large',
      label: '4 vCPU + 16 GiB',
      cpus: 4,
      memory: 16 * GIB,
      gpus: 0
    }
  ],
  unavailable: { 'pytorch/large': 'needs 16 GiB; only 6 GiB is free' },
  server: { image: 'base', size: 'small' }
};
