import { requestAPI } from '../api';

/**
 * An image of the catalog, as the hub offers it to this user.
 */
export interface IImageOption {
  id: string;
  label: string;
  display_name: string;
  framework: string;
  framework_version: string;
  accelerator: string;
  kernel_name: string;
  description: string;
}

/**
 * An instance size of the catalog, as the hub offers it to this user.
 */
export interface ISizeOption {
  id: string;
  label: string;
  cpus: number;
  memory: number;
  gpus: number;
}

/**
 * What this user may choose; `unavailable` maps "image/size" to the reason it cannot run.
 */
export interface IKernelOptions {
  images: IImageOption[];
  sizes: ISizeOption[];
  unavailable: { [pair: string]: string };
  server: { image?: string; size?: string };
}

/**
 * A notebook's image and size (saved as `metadata.studiohub`).
 */
export interface IChoice {
  image: string;
  size: string;
}

/**
 * The server's verdict on a choice, and the kernel to restart into.
 */
export interface IChoiceVerdict extends IChoice {
  kernel_name: string;
  image_label: string;
  size_label: string;
}

/**
 * One kernel: where it runs, its live usage, why it last died, a saved choice not used.
 */
export interface IKernelReport {
  id: string;
  choice: {
    image: string | null;
    size: string | null;
    image_label: string | null;
    size_label: string | null;
    limits: { cpus: number | null; memory: number | null; gpus: number };
    placed: boolean;
  };
  usage: {
    cpu_percent: number | null;
    memory: number | null;
    memory_limit: number | null;
    gpu_memory: number | null;
  };
  last_exit: { reason: 'oom' | 'died'; message: string; time: string } | null;
  fallback: { image: string; size: string; reason: string } | null;
}

export function getKernelOptions(replacing?: string): Promise<IKernelOptions> {
  const query = replacing ? `?replacing=${encodeURIComponent(replacing)}` : '';
  return requestAPI<IKernelOptions>(`kernel-options${query}`);
}

export function recordChoice(
  path: string,
  choice: IChoice,
  replaces?: string
): Promise<IChoiceVerdict> {
  return requestAPI<IChoiceVerdict>('kernel-choices', {
    method: 'POST',
    body: JSON.stringify({ path, ...choice, replaces: replaces ?? '' })
  });
}

/**
 * The reason a kernel could not start, without the wrapping Jupyter server puts around a
 * failed kernel change ("The 'x' kernel could not be started: '<reason>'").
 */
export function startRefusal(message: string): string {
  const wrapped = /kernel could not be started: (['"])([\s\S]*)\1\s*$/.exec(
    message
  );
  return wrapped ? wrapped[2] : message;
}

export function getKernelReport(kernelId: string): Promise<IKernelReport> {
  return requestAPI<IKernelReport>(`kernels/${kernelId}`);
}

export function restartServer(
  choice: IChoice
): Promise<IChoice & { pending_url: string }> {
  return requestAPI<IChoice & { pending_url: string }>('server-restart', {
    method: 'POST',
    body: JSON.stringify(choice)
  });
}

/**
 * Why `size` cannot run `image` now, or null when it can.
 */
export function unavailableReason(
  options: IKernelOptions,
  image: string,
  size: string
): string | null {
  return options.unavailable[`${image}/${size}`] ?? null;
}

/**
 * The allowed size closest to `wanted` (by memory, then CPUs) that can run `image`.
 */
export function nearestChoice(
  options: IKernelOptions,
  wanted: IChoice,
  wantedSize?: ISizeOption
): IChoice | null {
  const image = options.images.some(i => i.id === wanted.image)
    ? wanted.image
    : (options.server.image ?? options.images[0]?.id);
  if (!image) {
    return null;
  }
  const target = wantedSize ?? options.sizes.find(s => s.id === wanted.size);
  const usable = options.sizes.filter(
    s => unavailableReason(options, image, s.id) === null
  );
  if (usable.length === 0) {
    return null;
  }
  if (!target) {
    return { image, size: usable[0].id };
  }
  const distance = (s: ISizeOption) =>
    Math.abs(Math.log2(s.memory / target.memory)) +
    Math.abs(s.cpus - target.cpus) / 64;
  const best = usable.reduce((a, b) => (distance(b) < distance(a) ? b : a));
  return { image, size: best.id };
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/**
 * Bytes the way size labels print them: `512 MiB`, `1.5 GiB`.
 */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = value >= 10 || unit === 0 ? 0 : 1;
  return `${value.toFixed(digits).replace(/\.0$/, '')} ${UNITS[unit]}`;
}

/**
 * The toolbar's label: `PyTorch 2.13 · CPU · 2 vCPU + 4 GiB`.
 */
export function choiceLabel(
  report: IKernelReport,
  options: IKernelOptions | null
): string {
  const image =
    report.choice.image_label ??
    options?.images.find(i => i.id === report.choice.image)?.label ??
    report.choice.image ??
    'Unknown image';
  const size = report.choice.size_label ?? report.choice.size ?? 'server size';
  return `${image} · ${size}`;
}

/**
 * The toolbar's usage: `CPU 12% · 0.3 / 4 GiB` (and GPU memory where present).
 */
export function usageLabel(report: IKernelReport): string {
  const { cpu_percent, memory, memory_limit, gpu_memory } = report.usage;
  const parts: string[] = [];
  if (cpu_percent !== null) {
    parts.push(`CPU ${Math.round(cpu_percent)}%`);
  }
  if (memory !== null) {
    parts.push(
      memory_limit
        ? `${formatBytes(memory)} / ${formatBytes(memory_limit)}`
        : formatBytes(memory)
    );
  }
  if (gpu_memory !== null) {
    parts.push(`GPU ${formatBytes(gpu_memory)}`);
  }
  return parts.join(' · ');
}
