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

/**
 * Why no size can run `image`, when every size is refused for one same reason (an
 * image not built on this machine, whose reason is the build command): the picker says
 * it once, on the image, as the spawn page does. Null when some size can run, or when
 * the sizes are refused for reasons of their own (room, GPUs).
 */
export function imageUnavailableReason(
  options: IKernelOptions,
  image: string
): string | null {
  const reasons = options.sizes.map(s =>
    unavailableReason(options, image, s.id)
  );
  const [first] = reasons;
  if (!first || reasons.some(reason => reason !== first)) {
    return null;
  }
  return first;
}
