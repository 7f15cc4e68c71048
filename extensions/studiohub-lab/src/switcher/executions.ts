import { ISessionContext, Notification } from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';

/** The switch under way for a notebook's session context, or null (see `switched`). */
export type SwitchLookup = (
  context: ISessionContext
) => Promise<void> | null | undefined;

/** What a cell held during a switch that then failed is told (with the reason). */
export const NOT_RUN_AFTER_FAILED_SWITCH =
  'A cell was not run: it was started while this notebook switched, and the switch failed';

/**
 * Run `execute` once the switch `switched` is over; when that switch fails, call
 * `refuse` with its reason instead and reject as a canceled run (JupyterLab then
 * counts the cell as not run, without an error dialog). With no switch, run now.
 */
export async function afterSwitch<T>(
  switched: Promise<void> | null | undefined,
  execute: () => Promise<T>,
  refuse: (reason: string) => void
): Promise<T> {
  if (switched) {
    try {
      await switched;
    } catch (error) {
      const reason = (error as Error).message ?? String(error);
      refuse(reason);
      throw new Error(`Canceled: ${NOT_RUN_AFTER_FAILED_SWITCH}: ${reason}`);
    }
  }
  return execute();
}

let installed = false;

/**
 * Make every code cell run requested while its notebook switches wait for the new
 * kernel. JupyterLab's `CodeCell.execute` sends to `sessionContext.session.kernel` as
 * it is at the call: during the switch's sessions PATCH that is the old kernel (the
 * cell runs there under the new label) or one about to die (the cell is dropped, left
 * at `[ ]:`). Every way to run a notebook cell (Shift+Enter, Run All, Restart and Run
 * All, …) ends in that one function, so it is wrapped once, here, for all notebooks;
 * a context with no switch under way runs exactly as before.
 */
export function holdExecutionsDuringSwitch(lookup: SwitchLookup): void {
  if (installed) {
    return;
  }
  installed = true;
  const original = CodeCell.execute;
  const held: typeof CodeCell.execute = (cell, sessionContext, metadata) => {
    const switched = lookup(sessionContext);
    if (!switched) {
      return original(cell, sessionContext, metadata);
    }
    // Shown as running while it waits, as JupyterLab shows a queued cell.
    cell.model.executionState = 'running';
    return afterSwitch(
      switched,
      () => original(cell, sessionContext, metadata),
      reason => {
        cell.model.executionState = 'idle';
        Notification.error(
          `${NOT_RUN_AFTER_FAILED_SWITCH} (${reason}). Run it again.`,
          { autoClose: false }
        );
      }
    );
  };
  CodeCell.execute = held;
}
