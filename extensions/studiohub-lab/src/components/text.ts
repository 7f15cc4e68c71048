/**
 * A message's text with its `backticked` commands as <code>, the way the spawn page
 * shows them, rather than literal backticks.
 */
export function withCode(message: string): (string | HTMLElement)[] {
  return message.split(/`([^`]+)`/).map((part, index) => {
    if (index % 2 === 0) {
      return part;
    }
    const code = document.createElement('code');
    code.textContent = part;
    return code;
  });
}

/** A message without its backticks, for where only plain text shows (an option). */
export function plainText(message: string): string {
  return message.replace(/`([^`]+)`/g, '$1');
}
