import { NotebookModel, NotebookPanel } from '@jupyterlab/notebook';
import { JSONExt, PartialJSONObject } from '@lumino/coreutils';

/** A notebook as JupyterLab's model writes it (nbformat 4). */
type NotebookContent = ReturnType<NotebookModel['toJSON']>;

/**
 * Whether `current` differs from the saved notebook only in what JupyterLab itself fills
 * in from the kernel it connected: `metadata.language_info` (always the kernel's), and
 * the display name or language of `metadata.kernelspec` while its kernel name is the
 * same. A change of kernel (another name) or any other change is a real difference.
 */
export function onlyKernelInfoDiffers(
  saved: NotebookContent,
  current: NotebookContent
): boolean {
  const sameKernel =
    (saved.metadata.kernelspec?.name ?? null) ===
    (current.metadata.kernelspec?.name ?? null);
  const strip = (notebook: NotebookContent): PartialJSONObject => {
    const metadata: PartialJSONObject = { ...notebook.metadata };
    delete metadata.language_info;
    if (sameKernel) {
      delete metadata.kernelspec;
    }
    return { ...notebook, metadata } as unknown as PartialJSONObject;
  };
  return JSONExt.deepEqual(strip(saved), strip(current));
}

/**
 * Keep `panel` unmarked while its only changes are JupyterLab's kernel bookkeeping.
 *
 * When a notebook's kernel connects, JupyterLab writes that kernel's `language_info`
 * (and kernelspec labels) into the notebook, which marks it unsaved: a notebook just
 * copied from a share, saved in someone else's environment, opened already "modified"
 * although nobody touched it. Here such a change leaves the notebook shown as saved;
 * it is kept in the model and written with the user's next save. Any other change (an
 * edit, a kernel of another name, StudioHub's image and size) marks it as usual.
 */
export function keepKernelInfoClean(panel: NotebookPanel): void {
  const { context } = panel;
  void context.ready.then(() => {
    const model = context.model;
    let saved = model.toJSON() as NotebookContent;
    context.fileChanged.connect(() => {
      // Saved or reverted: the model is the file again.
      saved = model.toJSON() as NotebookContent;
    });
    model.stateChanged.connect((_, change) => {
      if (
        change.name === 'dirty' &&
        change.newValue === true &&
        onlyKernelInfoDiffers(saved, model.toJSON() as NotebookContent)
      ) {
        model.dirty = false;
      }
    });
  });
}
