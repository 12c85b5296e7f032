import { setTimeout as delay } from "node:timers/promises";
import {
  AuthError,
  type INetworkModule,
  type NetworkRequestOptions,
  type NetworkResponse,
} from "@azure/msal-node";
import type { Logger } from "pino";

/** The RFC 8628 grant type; MSAL posts Entra's short `device_code` instead. */
export const DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code";
/** RFC 8628 §3.2: a response without `interval` means 5 seconds. */
export const DEFAULT_INTERVAL_SECONDS = 5;
/** RFC 8628 §3.5: each `slow_down` adds 5 seconds to the interval, for good. */
export const SLOW_DOWN_SECONDS = 5;
/** Codes remembered at once; a code MSAL gave up on (expired client-side) is never heard of again. */
const REMEMBERED_CODES = 8;

/** The provider cannot be used in RFC 8628 mode (raised while preparing, before any code is asked for). */
export class Rfc8628Error extends Error {
  override readonly name = "Rfc8628Error";
}

export interface Rfc8628Endpoints {
  /** `token_endpoint` of the discovery document, from which MSAL derives its device-code URL. */
  readonly tokenEndpoint: string;
  /** `device_authorization_endpoint` of the discovery document, where the request really goes. */
  readonly deviceAuthorizationEndpoint: string;
}

export interface Rfc8628Options {
  readonly log?: Logger | undefined;
  /** Waits `ms`, or rejects when `signal` aborts. Replaceable so unit tests need not wait for real. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

interface DeviceAuthorizationBody {
  user_code?: unknown;
  verification_uri?: unknown;
  verification_url?: unknown;
  verification_uri_complete?: unknown;
  interval?: unknown;
  error?: unknown;
  error_description?: unknown;
}

/**
 * MSAL Node speaks Entra's dialect of the device flow; this `INetworkModule` decorator translates it to
 * RFC 8628 on the wire, so MSAL itself stays unforked:
 * - MSAL's device-code URL (`token_endpoint` with `/token` → `/devicecode`) is sent to the discovery
 *   document's `device_authorization_endpoint`;
 * - `grant_type=device_code` becomes the RFC's URN;
 * - a device authorization response without `interval` gets the RFC's default of 5 s (MSAL would poll
 *   with no pause at all);
 * - `slow_down` (which makes MSAL give up) is answered to MSAL as `authorization_pending`, and every
 *   later poll of that code is held back by the accumulated extra seconds before it is forwarded;
 * - `verification_uri_complete` (which MSAL drops) is kept per user code for the prompt.
 * Every other request passes through unchanged.
 */
export class Rfc8628NetworkModule implements INetworkModule {
  private readonly derivedDeviceCodeUrl: string;
  /** Extra seconds per device code, from `slow_down` answers. */
  private readonly slowDowns = new Map<string, number>();
  private readonly completeUris = new Map<string, string>();
  private readonly closing = new AbortController();
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;

  constructor(
    private readonly inner: INetworkModule,
    private readonly endpoints: Rfc8628Endpoints,
    private readonly options: Rfc8628Options = {},
  ) {
    // Exactly MSAL's derivation (Authority.deviceCodeEndpoint): the first "/token" only.
    this.derivedDeviceCodeUrl = endpoints.tokenEndpoint.replace("/token", "/devicecode");
    this.sleep = options.sleep ?? abortableSleep;
  }

  /** Builds the decorator from a discovery document, or says clearly why the provider cannot do the flow. */
  static fromDiscovery(
    inner: INetworkModule,
    document: { token_endpoint: string; device_authorization_endpoint?: string | undefined },
    options?: Rfc8628Options,
  ): Rfc8628NetworkModule {
    if (!document.device_authorization_endpoint) {
      throw new Rfc8628Error(
        "the identity provider's discovery document has no device_authorization_endpoint: " +
          "it does not offer the device authorization grant (RFC 8628), or not to this client",
      );
    }
    return new Rfc8628NetworkModule(
      inner,
      {
        tokenEndpoint: document.token_endpoint,
        deviceAuthorizationEndpoint: document.device_authorization_endpoint,
      },
      options,
    );
  }

  sendGetRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    return this.inner.sendGetRequestAsync<T>(url, options, timeout);
  }

  async sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    const form = new URLSearchParams(options?.body ?? "");
    const grantType = form.get("grant_type");
    // Where token_endpoint has no "/token", MSAL's derived URL is the token endpoint itself: the
    // device authorization request is then the one without a grant type.
    if (withoutQuery(url) === this.derivedDeviceCodeUrl && grantType === null) {
      return this.authorizeDevice<T>(url, options);
    }
    if (grantType === "device_code" || grantType === DEVICE_CODE_GRANT) {
      form.set("grant_type", DEVICE_CODE_GRANT);
      return this.poll<T>(url, form, options);
    }
    return this.inner.sendPostRequestAsync<T>(url, options);
  }

  /** The `verification_uri_complete` the provider sent with `userCode`, once; undefined if it sent none. */
  takeVerificationUriComplete(userCode: string): string | undefined {
    const uri = this.completeUris.get(userCode);
    this.completeUris.delete(userCode);
    return uri;
  }

  /** Ends any held-back poll at once (the agent is stopping). */
  close(): void {
    this.closing.abort();
  }

  private async authorizeDevice<T>(
    url: string,
    options?: NetworkRequestOptions,
  ): Promise<NetworkResponse<T>> {
    const query = new URL(url).search;
    const target = new URL(this.endpoints.deviceAuthorizationEndpoint);
    // MSAL's extra query parameters ride on the URL; keep them.
    for (const [name, value] of new URLSearchParams(query)) target.searchParams.append(name, value);
    const response = await this.inner.sendPostRequestAsync<DeviceAuthorizationBody>(target.href, options);
    const body = response.body;
    if (
      response.status < 200 ||
      response.status >= 300 ||
      typeof body !== "object" ||
      body === null ||
      body.error
    ) {
      // MSAL reads this response without checking for an error and would show `undefined` as the code.
      const error = typeof body?.error === "string" ? body.error : `http_${response.status}`;
      const description = typeof body?.error_description === "string" ? `: ${body.error_description}` : "";
      throw new AuthError("post_request_failed", "", `${error}${description}`);
    }
    const translated: DeviceAuthorizationBody = { ...body };
    // Google's device flow, which predates the RFC, names the field verification_url.
    if (translated.verification_uri === undefined && typeof body.verification_url === "string") {
      translated.verification_uri = body.verification_url;
    }
    if (typeof body.interval !== "number" || !(body.interval > 0)) {
      translated.interval = DEFAULT_INTERVAL_SECONDS;
    }
    if (typeof body.user_code === "string" && typeof body.verification_uri_complete === "string") {
      remember(this.completeUris, body.user_code, body.verification_uri_complete);
    }
    return { ...response, body: translated as T };
  }

  private async poll<T>(
    url: string,
    form: URLSearchParams,
    options?: NetworkRequestOptions,
  ): Promise<NetworkResponse<T>> {
    const deviceCode = form.get("device_code") ?? "";
    // MSAL waits its own fixed interval between polls; the extra that slow_down asked for is waited here.
    const extraSeconds = this.slowDowns.get(deviceCode) ?? 0;
    if (extraSeconds > 0) await this.sleep(extraSeconds * 1000, this.closing.signal);
    const response = await this.inner.sendPostRequestAsync<{ error?: unknown }>(url, {
      ...options,
      body: form.toString(),
    });
    const error =
      typeof response.body === "object" && response.body !== null ? response.body.error : undefined;
    if (error === "slow_down") {
      const extra = extraSeconds + SLOW_DOWN_SECONDS;
      remember(this.slowDowns, deviceCode, extra);
      this.options.log?.info(
        { extraSeconds: extra },
        "the identity provider asked to poll more slowly; keeping the code, polling less often",
      );
      // Only authorization_pending keeps MSAL polling; the code on screen stays valid.
      return { ...response, body: { ...response.body, error: "authorization_pending" } as T };
    }
    if (error !== "authorization_pending") this.slowDowns.delete(deviceCode);
    // access_denied, expired_token and the rest reach MSAL as they are: its errorMessage is the server's error.
    return response as NetworkResponse<T>;
  }
}

function withoutQuery(url: string): string {
  const at = url.indexOf("?");
  return at < 0 ? url : url.slice(0, at);
}

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  // Maps keep insertion order: the first key is the oldest.
  while (map.size > REMEMBERED_CODES) map.delete(map.keys().next().value as string);
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal });
}
