import { IChoice, IKernelOptions, ISizeOption } from '../tokens';

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
