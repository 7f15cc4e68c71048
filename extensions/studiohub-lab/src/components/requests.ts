import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  API_NAMESPACE,
  StudioHubAPIError,
  StudioHubNetworkError
} from '../api';
import { errorText } from './errors';

/**
 * `requestAPI`'s shape, injectable for tests.
 */
export type Request = <T>(endPoint: string, init?: RequestInit) => Promise<T>;

/**
 * A GET of raw bytes from the server extension (a log is text, never parsed as JSON).
 */
export type RequestBytes = (endPoint: string) => Promise<Uint8Array>;

export async function requestBytes(endPoint: string): Promise<Uint8Array> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, {}, settings);
  } catch (error) {
    throw new StudioHubNetworkError(
      `Cannot reach your Jupyter server: ${errorText(error)}`
    );
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body: { message?: string } = await response.json();
      message = body.message ?? message;
    } catch {
      // not JSON: keep the status line
    }
    throw new StudioHubAPIError(response.status, message);
  }
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * A service's dry run (`POST <root>?check=true`): null when the spec would be accepted,
 * else the service's reason; a failure to ask (5xx, unreachable) throws.
 */
export async function checkSpec(
  request: Request,
  root: string,
  spec: unknown
): Promise<string | null> {
  try {
    await request(`${root}?check=true`, {
      method: 'POST',
      body: JSON.stringify(spec)
    });
    return null;
  } catch (error) {
    if (error instanceof StudioHubAPIError && error.status < 500) {
      return error.message;
    }
    throw error;
  }
}
