/**
 * Show a followed log's new text in its box, following the tail unless the user
 * scrolled back to read; `text` is all of it (kept to a bound, so when the box would
 * hold more than that, it is replaced rather than appended to).
 */
export function showLogText(
  log: HTMLElement,
  text: string,
  added: string
): void {
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  if ((log.textContent ?? '').length + added.length > text.length) {
    log.textContent = text;
  } else {
    log.append(added);
  }
  if (atEnd) {
    log.scrollTop = log.scrollHeight;
  }
}
