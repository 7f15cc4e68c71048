import { StudioHubAPIError, StudioHubNetworkError } from '../api';
import { IShare } from '../tokens';

/**
 * The link people open: the hub's origin and the preview's path.
 */
export function shareLink(origin: string, url: string): string {
  if (/^https?:\/\//.test(url)) {
    return url;
  }
  return origin.replace(/\/+$/, '') + '/' + url.replace(/^\/+/, '');
}

/**
 * Who a link in a domain reaches, named as a domain: domains are named for teams
 * ("Team A") or for everybody else ("Everyone", the users in no other domain), so
 * "everyone in Everyone" would read as a stutter, and as more than it means.
 */
export function domainAudience(
  share: Pick<IShare, 'domain' | 'domain_name'>
): string {
  return `members of the ${share.domain_name || share.domain} domain`;
}

/**
 * The sentence above a new link, or above the link of a new version.
 */
export function shareResultText(share: IShare, newVersion: boolean): string {
  const audience = domainAudience(share);
  return newVersion
    ? `Version ${share.version} is published at the same link: ${audience} who open it see it.`
    : `${audience[0].toUpperCase()}${audience.slice(1)} can open this link:`;
}

/**
 * The file name of a path (`work/churn.ipynb` → `churn.ipynb`).
 */
export function basename(path: string): string {
  const parts = path.split('/').filter(part => part.length > 0);
  return parts.length ? parts[parts.length - 1] : '';
}

export function isNotebookPath(path: string | null | undefined): boolean {
  return !!path && path.toLowerCase().endsWith('.ipynb');
}

/**
 * The notebook a new version of a share is published from: the path this browser
 * remembered when sharing, else an open or selected notebook of the shared file name.
 * Never a guess: without one of these, null (the user is asked to open the notebook).
 */
export function sourceOfShare(
  remembered: string | null,
  name: string | undefined,
  candidates: ReadonlyArray<string | null | undefined>
): string | null {
  if (remembered) {
    return remembered;
  }
  const found = candidates.find(
    path => !!name && !!path && basename(path) === name
  );
  return found ?? null;
}

/**
 * My live links for a notebook of this file name, most recently updated first: the
 * links "publish a new version" can go to.
 */
export function liveSharesNamed(
  mine: ReadonlyArray<IShare>,
  name: string
): IShare[] {
  return mine
    .filter(share => share.revoked === null && share.name === name)
    .sort((a, b) => b.updated.localeCompare(a.updated));
}

/**
 * "just now", "5 min ago", "3 h ago", "yesterday", "4 days ago", else the date.
 */
export function formatWhen(iso: string, now: Date = new Date()): string {
  const then = new Date(iso);
  if (isNaN(then.getTime())) {
    return '';
  }
  const seconds = Math.max(0, (now.getTime() - then.getTime()) / 1000);
  if (seconds < 60) {
    return 'just now';
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min ago`;
  }
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)} h ago`;
  }
  const days = Math.floor(seconds / 86400);
  if (days === 1) {
    return 'yesterday';
  }
  if (days < 7) {
    return `${days} days ago`;
  }
  return then.toISOString().slice(0, 10);
}

/**
 * The line under a share's title in the sidebar.
 */
export function shareSummary(
  share: IShare,
  list: 'mine' | 'domains' | 'recent',
  now: Date = new Date()
): string {
  const parts: string[] = [];
  if (list !== 'mine') {
    parts.push(`by ${share.author}`);
  }
  parts.push(share.domain_name || share.domain, `v${share.version}`);
  if (list === 'mine') {
    if (share.revoked) {
      parts.push(`revoked ${formatWhen(share.revoked, now)}`);
      return parts.join(' · ');
    }
    const views = share.views ?? 0;
    parts.push(views === 1 ? '1 view' : `${views} views`);
  }
  const when = list === 'recent' && share.opened ? share.opened : share.updated;
  parts.push(
    (list === 'recent' && share.opened ? 'opened ' : 'updated ') +
      formatWhen(when, now)
  );
  return parts.join(' · ');
}

/**
 * What to tell the user about a failed sharing call: the service's own message (it
 * says what to do), or what to check when nothing answered.
 */
export function errorText(error: unknown): string {
  if (error instanceof StudioHubAPIError) {
    return error.message;
  }
  if (error instanceof StudioHubNetworkError) {
    return `${error.message}. Check your connection, then try again.`;
  }
  return error instanceof Error ? error.message : String(error);
}
