import { ISessionContext } from '@jupyterlab/apputils';
import type { NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, ServerConnection, Session } from '@jupyterlab/services';

import { IChoice, INotebookSession } from '../tokens';

/** The notebook metadata key of a notebook's image and size. */
export const METADATA_KEY = 'studiohub';

/**
 * The reason a kernel could not start, without the wrapping Jupyter server puts around a
 * failed kernel change ("The 'x' kernel could not be started: '<reason>'"). What is
 * left is the hub's own wording, which the user sees as is.
 */
export function startRefusal(message: string): string {
  const wrapped = /kernel could not be started: (['"])([\s\S]*)\1\s*$/.exec(
    message
  );
  return wrapped ? wrapped[2] : message;
}

/**
 * Restart a notebook's kernel as `kernelName` through its session, not its session
 * context: a start refused as the kernel is placed (the hub's placement is the one
 * check, answered by the sessions PATCH) then leaves the old kernel connected with its
 * state, and its reason goes to our notification, not to Lab's "Error Starting Kernel"
 * dialog (which would also drop the session). The context is first told the new name
 * (the kernel id wins on the server, so nothing restarts), since its displays read that
 * name on a kernel change.
 */
async function changeThroughSession(
  context: ISessionContext,
  session: Session.ISessionConnection,
  old: Kernel.IKernelConnection,
  kernelName: string
): Promise<void> {
  await context.changeKernel({ id: old.id, name: kernelName });
  try {
    await session.changeKernel({ name: kernelName });
  } catch (error) {
    if (
      error instanceof ServerConnection.ResponseError &&
      !session.isDisposed &&
      session.kernel?.id === old.id
    ) {
      // The server answered and kept the old kernel: its name goes back with it.
      await context
        .changeKernel({ id: old.id, name: old.name })
        .catch(() => null);
    } else {
      // No answer, or the session moved on: take the server's word for what runs.
      await context.sessionManager.refreshRunning().catch(() => undefined);
    }
    throw new Error(startRefusal((error as Error).message ?? String(error)));
  }
}

/**
 * A notebook panel's session as the switcher model needs it (the Lab side of a switch).
 */
export class NotebookSession implements INotebookSession {
  constructor(private readonly _panel: NotebookPanel) {}

  get path(): string {
    return this._panel.sessionContext.path;
  }

  get name(): string {
    return this._panel.title.label;
  }

  savedChoice(): IChoice | null {
    const saved = this._panel.content.model?.getMetadata(METADATA_KEY) as
      Partial<IChoice> | undefined;
    return saved?.image && saved?.size
      ? { image: saved.image, size: saved.size }
      : null;
  }

  saveChoice(choice: IChoice): void {
    this._panel.content.model?.setMetadata(METADATA_KEY, {
      image: choice.image,
      size: choice.size
    });
  }

  async liveKernel(): Promise<string | null> {
    const context = this._panel.sessionContext;
    // The server may have forgotten this notebook's kernel (it died for good, or was
    // shut down elsewhere): resync first, so the change goes to what really runs.
    await context.sessionManager.refreshRunning().catch(() => undefined);
    const kernel = context.session?.kernel;
    return kernel && kernel.status !== 'dead' ? kernel.id : null;
  }

  async restart(kernelName: string, old: string | null): Promise<void> {
    const context = this._panel.sessionContext;
    const session = context.session;
    const kernel = session?.kernel;
    if (session && kernel && old && kernel.id === old && !session.isDisposed) {
      await changeThroughSession(context, session, kernel, kernelName);
    } else {
      // No kernel, or none the server still has: start one the usual way.
      await context.changeKernel({ name: kernelName });
    }
  }
}
