import { Dialog, showDialog } from '@jupyterlab/apputils';

import {
  closeLabRestartDialogs,
  EXIT_DIALOG_CLASS,
  exitText,
  isLabRestartDialog
} from '../switcher/exitDialog';

const OOM = {
  reason: 'oom' as const,
  message:
    'your kernel was stopped: it went past the 512 MiB memory limit of size tiny (1 vCPU + 512 MiB). Free memory (del large objects) or restart with a larger size.',
  time: '2026-12-02T12:00:00+00:00'
};

/** JupyterLab's own dialog, as the notebook panel shows it when a kernel died. */
function labRestartDialog(path: string): Promise<Dialog.IResult<unknown>> {
  return showDialog({
    title: 'Kernel Restarting',
    body: `The kernel for ${path} appears to have died. It will restart automatically.`,
    buttons: [Dialog.okButton({ label: 'Ok' })]
  });
}

function openDialogs(): Dialog<unknown>[] {
  const dialogs: Dialog<unknown>[] = [];
  Dialog.tracker.forEach(d => dialogs.push(d));
  return dialogs.filter(d => !d.isDisposed);
}

describe('the kernel exit dialog', () => {
  afterEach(() => {
    openDialogs().forEach(d => d.dispose());
  });

  it('keeps the whole reason, capitalised, and says what a restart loses', () => {
    const [reason, restart] = exitText(OOM, true);
    expect(reason).toBe(
      'Your kernel was stopped: it went past the 512 MiB memory limit of size tiny (1 vCPU + 512 MiB). Free memory (del large objects) or restart with a larger size.'
    );
    expect(restart).toMatch(/restarts the kernel automatically/);
    expect(exitText(OOM, false)).toHaveLength(1);
  });

  it("closes JupyterLab's Kernel Restarting dialog of this notebook only", async () => {
    const mine = labRestartDialog('work/train.ipynb');
    const other = labRestartDialog('other.ipynb');
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(openDialogs()).toHaveLength(2);

    expect(closeLabRestartDialogs('work/train.ipynb')).toBe(true);
    await expect(mine).resolves.toBeTruthy();
    const left = openDialogs();
    expect(left).toHaveLength(1);
    expect(left[0].node.textContent).toContain('other.ipynb');
    expect(closeLabRestartDialogs('work/train.ipynb')).toBe(false);
    left[0].resolve();
    await other;
  });

  it('never takes a dialog of ours, or one with choices, for the restart dialog', () => {
    const node = document.createElement('div');
    node.innerHTML =
      '<div class="jp-Dialog-body">train.ipynb</div><div class="jp-Dialog-footer"><button></button></div>';
    expect(isLabRestartDialog(node, 'train.ipynb')).toBe(true);
    expect(isLabRestartDialog(node, '')).toBe(false);
    node.classList.add(EXIT_DIALOG_CLASS);
    expect(isLabRestartDialog(node, 'train.ipynb')).toBe(false);
    node.classList.remove(EXIT_DIALOG_CLASS);
    node
      .querySelector('.jp-Dialog-footer')!
      .append(document.createElement('button'));
    expect(isLabRestartDialog(node, 'train.ipynb')).toBe(false);
  });
});
