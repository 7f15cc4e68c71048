import { ServerConnection } from '@jupyterlab/services';

import { StudioHubAPIError, StudioHubNetworkError } from '../api';
import {
  basename,
  errorText,
  formatWhen,
  isNotebookPath,
  liveSharesNamed,
  shareLink,
  shareResultText,
  shareSummary,
  sourceOfShare
} from '../sharing/logic';
import { SharingModel } from '../sharing/model';
import { IShare } from '../tokens';

function makeShare(overrides: Partial<IShare> = {}): IShare {
  return {
    id: 'n1V_2oBYaKYZ0LEIaubhaQ',
    url: '/services/sharing/s/n1V_2oBYaKYZ0LEIaubhaQ',
    title: 'churn',
    name: 'churn.ipynb',
    author: 'ada',
    domain: 'team-a',
    domain_name: 'Team A',
    created: '2026-11-20T10:00:00+00:00',
    updated: '2026-11-20T10:00:00+00:00',
    version: 1,
    revoked: null,
    ...overrides
  };
}

const NOW = new Date('2026-11-23T12:00:00Z');

describe('sharing logic', () => {
  it('makes absolute links from the service URL', () => {
    expect(shareLink('http://hub:8000', '/services/sharing/s/abc')).toBe(
      'http://hub:8000/services/sharing/s/abc'
    );
    expect(shareLink('https://hub/', 'services/sharing/s/abc')).toBe(
      'https://hub/services/sharing/s/abc'
    );
    expect(shareLink('https://hub', 'https://other/s/abc')).toBe(
      'https://other/s/abc'
    );
  });

  it('publishes a new version from a known notebook, never a guess', () => {
    expect(sourceOfShare('work/churn.ipynb', 'churn.ipynb', [])).toBe(
      'work/churn.ipynb'
    );
    // Another browser: the open (or selected) notebook of that name.
    expect(
      sourceOfShare(null, 'churn.ipynb', [
        'other.ipynb',
        undefined,
        'models/churn.ipynb'
      ])
    ).toBe('models/churn.ipynb');
    // Not the bare name at the home's root, which may be another file.
    expect(
      sourceOfShare(null, 'churn.ipynb', ['other.ipynb', null])
    ).toBeNull();
    expect(sourceOfShare(null, undefined, ['churn.ipynb'])).toBeNull();
  });

  it('names notebooks', () => {
    expect(basename('work/models/churn.ipynb')).toBe('churn.ipynb');
    expect(basename('churn.ipynb')).toBe('churn.ipynb');
    expect(isNotebookPath('a/b.IPYNB')).toBe(true);
    expect(isNotebookPath('a/b.py')).toBe(false);
    expect(isNotebookPath(null)).toBe(false);
  });

  it('offers a new version only to my live links of the same name, newest first', () => {
    const mine = [
      makeShare({ id: 'old', updated: '2026-11-01T00:00:00+00:00' }),
      makeShare({ id: 'new', updated: '2026-11-22T00:00:00+00:00' }),
      makeShare({ id: 'gone', revoked: '2026-11-22T00:00:00+00:00' }),
      makeShare({ id: 'other', name: 'other.ipynb' })
    ];
    expect(liveSharesNamed(mine, 'churn.ipynb').map(s => s.id)).toEqual([
      'new',
      'old'
    ]);
    expect(liveSharesNamed(mine, 'nothing.ipynb')).toEqual([]);
  });

  it('says when, roughly', () => {
    expect(formatWhen('2026-11-23T11:59:30Z', NOW)).toBe('just now');
    expect(formatWhen('2026-11-23T11:55:00Z', NOW)).toBe('5 min ago');
    expect(formatWhen('2026-11-23T09:00:00Z', NOW)).toBe('3 h ago');
    expect(formatWhen('2026-11-22T10:00:00Z', NOW)).toBe('yesterday');
    expect(formatWhen('2026-11-19T10:00:00Z', NOW)).toBe('4 days ago');
    expect(formatWhen('2026-10-01T10:00:00Z', NOW)).toBe('2026-10-01');
    expect(formatWhen('not a date', NOW)).toBe('');
  });

  it('summarises a share for each list', () => {
    const share = makeShare({ version: 2, views: 3 });
    expect(shareSummary(share, 'mine', NOW)).toBe(
      'Team A · v2 · 3 views · updated 3 days ago'
    );
    expect(shareSummary({ ...share, views: 1 }, 'mine', NOW)).toContain(
      '1 view ·'
    );
    expect(
      shareSummary({ ...share, revoked: '2026-11-23T11:00:00Z' }, 'mine', NOW)
    ).toBe('Team A · v2 · revoked 1 h ago');
    expect(shareSummary(share, 'domains', NOW)).toBe(
      'by ada · Team A · v2 · updated 3 days ago'
    );
    expect(
      shareSummary({ ...share, opened: '2026-11-23T11:58:00Z' }, 'recent', NOW)
    ).toBe('by ada · Team A · v2 · opened 2 min ago');
  });

  it("shows the service's message, and what to check when nothing answered", () => {
    const forbidden =
      "this notebook is shared with the domain 'Team A': ask an administrator to add you";
    expect(errorText(new StudioHubAPIError(403, forbidden))).toBe(forbidden);
    expect(errorText(new StudioHubNetworkError('Cannot reach'))).toBe(
      'Cannot reach. Check your connection, then try again.'
    );
  });
});

/**
 * A server whose answers come from `route(method, path)`; records every request.
 */
function fakeServer(
  route: (method: string, path: string, body: any) => [number, unknown],
  calls: { method: string; path: string; body: any }[] = []
) {
  return ServerConnection.makeSettings({
    baseUrl: 'http://localhost:8888/user/ada/',
    fetch: (async (request: Request) => {
      const url = new URL(request.url);
      const path = url.pathname.replace('/user/ada/studiohub/api/v1/', '');
      const text = request.method === 'GET' ? '' : await request.text();
      const body = text ? JSON.parse(text) : undefined;
      // (ServerConnection appends a cache-busting timestamp)
      const q = url.search.replace(/[?&]\d{10,}$/, '');
      calls.push({ method: request.method, path: path + q, body });
      const [status, answer] = route(request.method, path + q, body);
      return new Response(JSON.stringify(answer), { status });
    }) as any
  });
}

describe('the share result', () => {
  it('names the domain as a domain, also one called Everyone', () => {
    const everyone = makeShare({ domain: 'everyone', domain_name: 'Everyone' });
    expect(shareResultText(everyone, false)).toBe(
      'Members of the Everyone domain can open this link:'
    );
    expect(shareResultText(makeShare(), false)).toBe(
      'Members of the Team A domain can open this link:'
    );
    expect(shareResultText(everyone, false)).not.toMatch(/everyone in/i);
  });

  it('says a new version is at the same link, for the same members', () => {
    expect(shareResultText(makeShare({ version: 3 }), true)).toBe(
      'Version 3 is published at the same link: members of the Team A domain who open it see it.'
    );
  });

  it("falls back to the domain's id when it has no display name", () => {
    expect(shareResultText(makeShare({ domain_name: '' }), false)).toBe(
      'Members of the team-a domain can open this link:'
    );
  });
});

describe('SharingModel', () => {
  it('shares a new link, remembers the path, and refreshes the lists', async () => {
    const calls: { method: string; path: string; body: any }[] = [];
    const storage = new Map<string, string>();
    const shared = makeShare({ id: 'abc' });
    const settings = fakeServer((method, path) => {
      if (method === 'POST') {
        return [201, shared];
      }
      if (path.startsWith('sharing/shares?filter=mine')) {
        return [200, { shares: [{ ...shared, views: 0 }] }];
      }
      return [200, { shares: [] }];
    }, calls);
    const model = new SharingModel({
      settings,
      storage: {
        getItem: k => storage.get(k) ?? null,
        setItem: (k, v) => void storage.set(k, v)
      }
    });
    const result = await model.share({
      path: 'work/churn.ipynb',
      shareId: null,
      domain: 'team-a',
      includeOutputs: false,
      note: '  look at cell 3  '
    });
    expect(result.id).toBe('abc');
    expect(calls[0]).toEqual({
      method: 'POST',
      path: 'sharing/shares',
      body: {
        path: 'work/churn.ipynb',
        include_outputs: false,
        note: 'look at cell 3',
        domain: 'team-a'
      }
    });
    expect(model.pathOf('abc')).toBe('work/churn.ipynb');
    await model.refresh();
    expect(model.mine.map(s => s.id)).toEqual(['abc']);
    expect(model.find('abc')?.views).toBe(0);
  });

  it('publishes a new version to the same link and answers the link', async () => {
    const calls: { method: string; path: string; body: any }[] = [];
    const settings = fakeServer(
      (method, path) =>
        method === 'POST'
          ? [201, { number: 2 }]
          : path === 'sharing/shares/abc'
            ? [200, makeShare({ id: 'abc', version: 2 })]
            : [200, { shares: [] }],
      calls
    );
    const model = new SharingModel({ settings, storage: null });
    const result = await model.share({
      path: 'churn.ipynb',
      shareId: 'abc',
      domain: 'ignored',
      includeOutputs: true,
      note: ''
    });
    expect(result.version).toBe(2);
    expect(calls[0]).toEqual({
      method: 'POST',
      path: 'sharing/shares/abc/versions',
      body: { path: 'churn.ipynb', include_outputs: true }
    });
  });

  it('keeps what it had and reports the error when a list fails', async () => {
    let fail = false;
    const settings = fakeServer((method, path) =>
      fail && path.startsWith('sharing/recent')
        ? [502, { status: 502, message: 'cannot reach the sharing service' }]
        : [200, { shares: [makeShare({ id: path.slice(8, 20) })] }]
    );
    const model = new SharingModel({ settings, storage: null });
    await model.refresh();
    expect(model.recent).toHaveLength(1);
    expect(model.error).toBeNull();
    fail = true;
    await expect(model.refresh()).rejects.toBeInstanceOf(StudioHubAPIError);
    expect(model.recent).toHaveLength(1);
    expect(model.error).toBe('cannot reach the sharing service');
  });

  it('searches shared-with-my-domains by title or author', async () => {
    const calls: { method: string; path: string; body: any }[] = [];
    const settings = fakeServer(() => [200, { shares: [] }], calls);
    const model = new SharingModel({ settings, storage: null });
    await model.search('ada & co');
    expect(model.query).toBe('ada & co');
    expect(calls[0].path).toMatch(
      /^sharing\/shares\?filter=domains&q=ada%20%26%20co/
    );
  });

  it('revokes, and a refusal keeps its status and message', async () => {
    const settings = fakeServer(() => [
      403,
      { status: 403, message: 'only the author can revoke this link' }
    ]);
    const model = new SharingModel({ settings, storage: null });
    await expect(model.revoke('abc')).rejects.toEqual(
      new StudioHubAPIError(403, 'only the author can revoke this link')
    );
  });
});
