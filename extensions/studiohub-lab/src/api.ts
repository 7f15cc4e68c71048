import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/**
 * The versioned namespace of the StudioHub server extension's HTTP API.
 */
export const API_NAMESPACE = 'studiohub/api/v1';

/**
 * What a 404 from outside our own handlers means: the server extension is missing.
 */
export const NOT_ENABLED_MESSAGE =
  'StudioHub server extension is not enabled: run `jupyter server extension enable studiohub_lab`';

/**
 * A refusal or failure answered by the StudioHub server extension, carrying its message.
 */
export class StudioHubAPIError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
    this.name = 'StudioHubAPIError';
  }
}

/**
 * The server could not be reached at all.
 */
export class StudioHubNetworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StudioHubNetworkError';
  }
}

/**
 * The JSON body of an error answered by our handlers: always `{status, message}`.
 */
interface IErrorBody {
  status: number;
  message: string;
}

function isErrorBody(data: unknown): data is IErrorBody {
  return (
    typeof data === 'object' &&
    data !== null &&
    typeof (data as IErrorBody).status === 'number' &&
    typeof (data as IErrorBody).message === 'string'
  );
}

/**
 * Call the StudioHub server extension.
 *
 * @param endPoint path under `studiohub/api/v1/`, with its query if any
 * @param init the fetch options (method, body)
 * @param settings the server connection settings (tests pass their own)
 * @returns the parsed JSON answer
 * @throws StudioHubAPIError with the server's message; StudioHubNetworkError
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new StudioHubNetworkError(
      `Cannot reach your Jupyter server: ${(error as Error).message ?? error}`
    );
  }
  const text = await response.text();
  let data: unknown = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
  }
  if (!response.ok) {
    if (isErrorBody(data)) {
      throw new StudioHubAPIError(response.status, data.message);
    }
    if (response.status === 404) {
      throw new StudioHubAPIError(404, NOT_ENABLED_MESSAGE);
    }
    const message =
      typeof data === 'object' && data !== null && 'message' in data
        ? String((data as { message: unknown }).message)
        : `${response.status} ${response.statusText}`;
    throw new StudioHubAPIError(response.status, message);
  }
  return data as T;
}
