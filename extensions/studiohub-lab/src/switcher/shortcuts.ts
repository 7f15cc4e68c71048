import { CommandRegistry } from '@lumino/commands';

import { CommandIDs } from '../tokens';

/**
 * Where `Accel Shift K` opens the picker: anywhere in a notebook panel (command mode,
 * its toolbar), and inside a cell's editor (edit mode). The second selector is needed
 * because JupyterLab binds the same keys to `codemirror:delete-line` on `.cm-content`,
 * the editor's own node: the binding whose selector matches nearest the focused node
 * wins, and among equals the more specific selector, so `.jp-Notebook .cm-content`
 * beats `.cm-content` in notebooks and leaves it alone in the file editor.
 */
export const SWITCH_KERNEL_SELECTORS = [
  '.jp-NotebookPanel',
  '.jp-Notebook .cm-content'
] as const;

export const SWITCH_KERNEL_KEYS = ['Accel Shift K'];

/**
 * Bind the picker's shortcut in command mode and edit mode.
 */
export function addSwitchKeyBindings(commands: CommandRegistry): void {
  for (const selector of SWITCH_KERNEL_SELECTORS) {
    commands.addKeyBinding({
      command: CommandIDs.switchKernel,
      keys: SWITCH_KERNEL_KEYS,
      selector
    });
  }
}
