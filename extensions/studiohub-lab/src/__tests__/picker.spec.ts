import { Dialog } from '@jupyterlab/apputils';

import { imageUnavailableReason } from '../switcher/choices';
import { ChoicePicker } from '../switcher/picker';
import { IKernelOptions } from '../tokens';
import { OPTIONS } from './fixtures';

const NOT_BUILT =
  'TensorFlow 2.21 · CPU is not built on this machine: ask an administrator to run `studiohub env build tensorflow`';

function notBuilt(image: string): { [pair: string]: string } {
  const pairs: { [pair: string]: string } = {};
  for (const size of OPTIONS.sizes) {
    pairs[`${image}/${size.id}`] = NOT_BUILT;
  }
  return pairs;
}

/**
 * The fixture's options plus TensorFlow, not built here (every size refused with the
 * build command), and a GPU image no size of which has room (each its own reason).
 */
const options: IKernelOptions = {
  ...OPTIONS,
  images: [
    ...OPTIONS.images,
    {
      ...OPTIONS.images[1],
      id: 'tensorflow',
      label: 'TensorFlow 2.21 · CPU',
      kernel_name: 'studiohub-tensorflow'
    },
    {
      ...OPTIONS.images[1],
      id: 'jax',
      label: 'JAX 0.6 · CPU',
      kernel_name: 'studiohub-jax'
    }
  ],
  unavailable: {
    ...OPTIONS.unavailable,
    ...notBuilt('tensorflow'),
    'jax/small': 'needs 2 GiB; only 1 GiB is free',
    'jax/medium': 'needs 4 GiB; only 1 GiB is free',
    'jax/large': 'needs 16 GiB; only 1 GiB is free'
  }
};

function row(node: HTMLElement, name: string, value: string) {
  const label = node.querySelector(
    `input[name="studiohub-${name}"][value="${value}"]`
  )!.parentElement as HTMLLabelElement;
  return { label, input: label.querySelector('input') as HTMLInputElement };
}

function choose(node: HTMLElement, name: string, value: string): void {
  const input = row(node, name, value).input;
  input.checked = true;
  input.dispatchEvent(new Event('input', { bubbles: true }));
  input.dispatchEvent(new Event('change', { bubbles: true }));
}

const count = (text: string, part: string) => text.split(part).length - 1;

describe('imageUnavailableReason', () => {
  it('is the one reason every size of the image is refused for', () => {
    expect(imageUnavailableReason(options, 'tensorflow')).toBe(NOT_BUILT);
  });

  it('is null when a size can run, or when the sizes have reasons of their own', () => {
    expect(imageUnavailableReason(options, 'pytorch')).toBeNull();
    expect(imageUnavailableReason(options, 'jax')).toBeNull();
    expect(imageUnavailableReason(options, 'base')).toBeNull();
  });
});

describe('ChoicePicker', () => {
  let dialog: Dialog<any> | null = null;
  afterEach(() => {
    // Cancel rather than dispose: a disposed dialog rejects its pending launch.
    if (dialog && !dialog.isDisposed) {
      dialog.reject();
    }
    dialog = null;
    document.body.innerHTML = '';
  });

  /** The picker in a real JupyterLab dialog, as `pickChoice` shows it. */
  async function open(current: { image?: string; size?: string }) {
    const picker = new ChoicePicker(options, current, 'Pick one.');
    dialog = new Dialog({
      title: 'Change Image and Size',
      body: picker,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Switch' })]
    });
    const result = dialog.launch();
    await dialog.ready;
    await new Promise(resolve => setTimeout(resolve, 10));
    const accept = dialog.node.querySelector(
      '.jp-mod-accept'
    ) as HTMLButtonElement;
    return { picker, node: picker.node, accept, result };
  }

  it('disables an image not built here, with the build command said once', async () => {
    const { node } = await open({ image: 'base', size: 'small' });
    const tensorflow = row(node, 'image', 'tensorflow');
    expect(tensorflow.input.disabled).toBe(true);
    expect(tensorflow.label.classList).toContain('jp-mod-disabled');
    expect(tensorflow.label.textContent).toContain(NOT_BUILT);
    expect(count(node.textContent!, 'studiohub env build tensorflow')).toBe(1);
    expect(row(node, 'image', 'pytorch').input.disabled).toBe(false);
  });

  it('opens on a runnable image when the current one is not built', async () => {
    const { picker, node, accept } = await open({
      image: 'tensorflow',
      size: 'small'
    });
    expect(picker.getValue()).toEqual({ image: 'base', size: 'small' });
    expect(count(node.textContent!, 'studiohub env build tensorflow')).toBe(1);
    expect(accept.disabled).toBe(false);
  });

  it('disables Switch while no size can run the chosen image, and refuses Enter', async () => {
    const { picker, node, accept, result } = await open({
      image: 'base',
      size: 'small'
    });
    expect(picker.valid).toBe(true);
    expect(accept.disabled).toBe(false);

    choose(node, 'image', 'jax');
    expect(picker.valid).toBe(false);
    expect(accept.disabled).toBe(true);
    // Each size's own reason stays beside it.
    expect(row(node, 'size', 'large').label.textContent).toContain(
      'needs 16 GiB; only 1 GiB is free'
    );
    expect(node.textContent).toContain(
      'No size can run JAX 0.6 · CPU now: choose another image.'
    );
    dialog!.node.dispatchEvent(
      new KeyboardEvent('keydown', { key: 'Enter', bubbles: true })
    );
    accept.click();
    let settled = false;
    void result.then(() => (settled = true));
    await new Promise(resolve => setTimeout(resolve, 10));
    expect(settled).toBe(false);

    choose(node, 'image', 'pytorch');
    expect(picker.getValue()).toEqual({ image: 'pytorch', size: 'small' });
    expect(accept.disabled).toBe(false);
    expect(row(node, 'size', 'large').input.disabled).toBe(true);
    accept.click();
    await expect(result).resolves.toMatchObject({
      button: { accept: true },
      value: { image: 'pytorch', size: 'small' }
    });
  });
});
