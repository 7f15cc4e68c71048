import { IKernelOptions, IKernelReport } from '../tokens';

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
