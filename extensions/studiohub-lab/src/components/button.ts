/**
 * The small buttons of StudioHub's sidebars and dialogs, made one way so they look,
 * read aloud and behave alike (JupyterLab's styled button, minimal unless told).
 */
export interface IButtonOptions {
  /** What the button shows. */
  text: string;
  /** What a screen reader says (the text with its object, e.g. "Stop TensorBoard for runs"). */
  label: string;
  /** What the click does; a returned promise is not awaited. */
  onClick: () => unknown;
  /** A tooltip, when the text alone does not say enough. */
  title?: string;
  /**
   * JupyterLab's button modifier: `jp-mod-minimal` (default), or a dialog's filled
   * `jp-mod-accept`, `jp-mod-reject` (neutral) or `jp-mod-warn` (destructive).
   */
  variant?: 'minimal' | 'accept' | 'reject' | 'warn';
}

export function makeButton(options: IButtonOptions): HTMLButtonElement {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = `jp-Button jp-mod-styled jp-mod-${options.variant ?? 'minimal'}`;
  button.textContent = options.text;
  button.setAttribute('aria-label', options.label);
  if (options.title) {
    button.title = options.title;
  }
  button.addEventListener('click', () => {
    void options.onClick();
  });
  return button;
}
