import { CommandRegistry } from '@lumino/commands';

import { addSwitchKeyBindings } from '../switcher/shortcuts';
import { CommandIDs } from '../tokens';

/**
 * A notebook with a cell editor, and a file editor, in the page; JupyterLab's own
 * bindings of the same keys registered as it does (codemirror-extension and
 * toc-extension settings).
 */
function setUp() {
  document.body.innerHTML = `
    <div class="jp-NotebookPanel">
      <div class="jp-NotebookPanel-toolbar"><button id="toolbar">x</button></div>
      <div class="jp-Notebook jp-mod-commandMode" tabindex="-1" id="notebook">
        <div class="jp-Cell"><div class="cm-editor">
          <div class="cm-content" contenteditable="true" id="cell"></div>
        </div></div>
      </div>
    </div>
    <div class="jp-FileEditor"><div class="cm-editor">
      <div class="cm-content" contenteditable="true" id="file"></div>
    </div></div>`;
  const ran: string[] = [];
  const commands = new CommandRegistry();
  for (const id of [
    CommandIDs.switchKernel,
    'codemirror:delete-line',
    'toc:show-panel'
  ]) {
    commands.addCommand(id, { execute: () => void ran.push(id) });
  }
  commands.addKeyBinding({
    command: 'toc:show-panel',
    keys: ['Accel Shift K'],
    selector: 'body'
  });
  commands.addKeyBinding({
    command: 'codemirror:delete-line',
    keys: ['Accel Shift K'],
    selector: '.cm-content'
  });
  addSwitchKeyBindings(commands);
  const press = (id: string) => {
    const event = new KeyboardEvent('keydown', {
      bubbles: true,
      cancelable: true,
      ctrlKey: true,
      shiftKey: true,
      key: 'K',
      code: 'KeyK',
      keyCode: 75
    } as KeyboardEventInit);
    document.getElementById(id)!.dispatchEvent(event);
    commands.processKeydownEvent(event);
  };
  return { ran, press };
}

describe('Accel Shift K', () => {
  it('opens the picker from a notebook in command mode', () => {
    const { ran, press } = setUp();
    press('notebook');
    press('toolbar');
    expect(ran).toEqual([CommandIDs.switchKernel, CommandIDs.switchKernel]);
  });

  it("opens the picker from a cell's editor (edit mode) instead of deleting the line", () => {
    const { ran, press } = setUp();
    press('cell');
    expect(ran).toEqual([CommandIDs.switchKernel]);
  });

  it("leaves JupyterLab's own binding outside notebooks", () => {
    const { ran, press } = setUp();
    press('file');
    expect(ran).toEqual(['codemirror:delete-line']);
  });
});
