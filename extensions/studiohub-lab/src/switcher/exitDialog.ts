import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IKernelNotice } from '../tokens';

/** The class of StudioHub's own kernel-exit dialog (never taken for JupyterLab's). */
export const EXIT_DIALOG_CLASS = 'jp-StudioHub-KernelExitDialog';

/**
 * Whether an open dialog is JupyterLab's own "Kernel Restarting" dialog for the notebook
 * at `path`: the notebook panel shows it, with an OK button only, as soon as the kernel
 * died and names the notebook by its path. (Matched on the path and the one button, not
 * on the title, which is translated.)
 */
export function isLabRestartDialog(node: HTMLElement, path: string): boolean {
  if (node.classList.contains(EXIT_DIALOG_CLASS) || !path) {
    return false;
  }
  const body = node.querySelector('.jp-Dialog-body');
  const buttons = node.querySelectorAll('.jp-Dialog-footer button');
  return !!body?.textContent?.includes(path) && buttons.length === 1;
}

/**
 * Close JupyterLab's "Kernel Restarting" dialogs for `path`; whether there was one (so
 * the kernel is being restarted).
 */
export function closeLabRestartDialogs(path: string): boolean {
  const found: Dialog<unknown>[] = [];
  Dialog.tracker.forEach(dialog => {
    if (!dialog.isDisposed && isLabRestartDialog(dialog.node, path)) {
      found.push(dialog);
    }
  });
  found.forEach(dialog => dialog.resolve());
  return found.length > 0;
}

/**
 * The paragraphs of the exit dialog: why the kernel stopped (the server's own words,
 * whole), and what the restart means when JupyterLab is restarting it.
 */
export function exitText(
  exit: Extract<IKernelNotice, { kind: 'exit' }>['exit'],
  restarting: boolean
): string[] {
  const reason = exit.message.trim();
  const lines = [reason.charAt(0).toUpperCase() + reason.slice(1)];
  if (restarting) {
    lines.push(
      'JupyterLab restarts the kernel automatically: its variables are gone, so run the cells you need again.'
    );
  }
  return lines;
}

/**
 * Tell the user why the kernel of notebook `name` (at `path`) stopped, in one dialog in
 * place of JupyterLab's "Kernel Restarting" one: that modal dialog, shown first, would
 * otherwise cover a notification, and a notification cuts a long reason short.
 * Resolves true when the user chose to change the size.
 */
export async function showExitDialog(
  name: string,
  path: string,
  exit: Extract<IKernelNotice, { kind: 'exit' }>['exit']
): Promise<boolean> {
  const restarting = closeLabRestartDialogs(path);
  const body = document.createElement('div');
  for (const line of exitText(exit, restarting)) {
    const paragraph = document.createElement('p');
    paragraph.textContent = line;
    body.append(paragraph);
  }
  const result = await showDialog({
    title:
      exit.reason === 'oom'
        ? `${name}: the kernel ran out of memory`
        : `${name}: the kernel stopped`,
    body: new WidgetBody(body),
    buttons: [
      Dialog.cancelButton({ label: 'OK' }),
      Dialog.okButton({ label: 'Change size…' })
    ],
    defaultButton: 0
  });
  return result.button.accept;
}

/** A dialog body from a DOM node (with the dialog's class that marks it as ours). */
class WidgetBody extends Widget {
  constructor(node: HTMLElement) {
    super({ node });
    this.addClass('jp-StudioHub-KernelExit');
  }

  protected onAfterAttach(): void {
    this.node.closest('.jp-Dialog')?.classList.add(EXIT_DIALOG_CLASS);
  }
}
