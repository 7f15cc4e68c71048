import { ILayoutRestorer, JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { CommandIDs } from '../tokens';

/**
 * Where a sidebar panel goes and the command that shows it.
 */
export interface ISidebarOptions {
  /** Its place among the left sidebar's tabs (JupyterLab's own use 100–900). */
  rank: number;
  /** The palette command that brings it forward. */
  command: CommandIDs;
  label: string;
  category: string;
  restorer: ILayoutRestorer | null;
  palette: ICommandPalette | null;
}

/**
 * Put a panel in the left sidebar the way every StudioHub panel is: restored with the
 * layout, and shown by a palette command.
 */
export function addSidebar(
  app: JupyterFrontEnd,
  panel: Widget,
  options: ISidebarOptions
): void {
  app.shell.add(panel, 'left', { rank: options.rank });
  if (options.restorer) {
    options.restorer.add(panel, panel.id);
  }
  app.commands.addCommand(options.command, {
    label: options.label,
    // After the saved layout is back, or the layout would put its own tab forward (a
    // route such as ?studiohub-sidebar=training runs before it is restored).
    execute: () =>
      app.restored.then(() => {
        app.shell.activateById(panel.id);
      })
  });
  if (options.palette) {
    options.palette.addItem({
      command: options.command,
      category: options.category
    });
  }
}
