import { ServerConnection } from '@jupyterlab/services';

import {
  NOT_ENABLED_MESSAGE,
  StudioHubAPIError,
  StudioHubNetworkError,
  requestAPI
} from '../api';

/**
 * Settings whose fetch answers with `status` and `body`, recording the URL asked for.
 */
function fakeServer(status: number, body: string, calls: string[] = []) {
  return ServerConnection.makeSettings({
    baseUrl: 'http://localhost:8888/user/ada/',
    fetch: (async (request: Request) => {
      calls.push(request.url);
      return new Response(body, { status, statusText: 'x' });
    }) as any
  });
}

describe('requestAPI', () => {
  it('calls the versioned namespace under the base URL and parses JSON', async () => {
    const calls: string[] = [];
    const info = await requestAPI<{ version: string }>(
      'info',
      {},
      fakeServer(200, '{"version": "0.1.0"}', calls)
    );
    expect(info.version).toBe('0.1.0');
    // (ServerConnection adds a cache-busting query to GETs)
    expect(calls[0].split('?')[0]).toBe(
      'http://localhost:8888/user/ada/studiohub/api/v1/info'
    );
  });

  it("raises a typed error carrying the server's message", async () => {
    const body = JSON.stringify({
      status: 403,
      message: "folder '/etc' is outside your home folder"
    });
    const request = requestAPI('tensorboards', {}, fakeServer(403, body));
    await expect(request).rejects.toBeInstanceOf(StudioHubAPIError);
    await expect(
      requestAPI('tensorboards', {}, fakeServer(403, body))
    ).rejects.toMatchObject({
      status: 403,
      message: "folder '/etc' is outside your home folder"
    });
  });

  it('keeps our own 404s (an unknown TensorBoard) as they are', async () => {
    const body = JSON.stringify({ status: 404, message: 'no TensorBoard 12' });
    await expect(
      requestAPI('tensorboards/12', {}, fakeServer(404, body))
    ).rejects.toMatchObject({ status: 404, message: 'no TensorBoard 12' });
  });

  it('turns a 404 from outside the extension into the fix', async () => {
    await expect(
      requestAPI('info', {}, fakeServer(404, '<html>404: Not Found</html>'))
    ).rejects.toMatchObject({ status: 404, message: NOT_ENABLED_MESSAGE });
    expect(NOT_ENABLED_MESSAGE).toContain(
      'jupyter server extension enable studiohub_lab'
    );
  });

  it('reports an unreachable server as a network error', async () => {
    const settings = ServerConnection.makeSettings({
      baseUrl: 'http://localhost:8888/',
      fetch: (async () => {
        throw new TypeError('Failed to fetch');
      }) as any
    });
    await expect(requestAPI('info', {}, settings)).rejects.toBeInstanceOf(
      StudioHubNetworkError
    );
  });
});
