import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from "@azure/msal-node";
import { Agent, fetch, type Dispatcher } from "undici";

export interface NetworkClientOptions {
  /** Extra PEM CAs to trust on top of the system's and NODE_EXTRA_CA_CERTS. */
  readonly ca?: string | undefined;
  /** Timeout of one request, in ms. MSAL itself has none on POSTs, so a hung poll would hang forever. */
  readonly timeoutMs: number;
}

/** Raised when the identity provider could not be reached or did not answer in time. */
export class IdpUnreachableError extends Error {
  override readonly name = "IdpUnreachableError";
}

/**
 * MSAL's `system.networkClient`: the one place the agent's HTTP to the identity provider goes through,
 * so timeouts and trusted CAs are ours to set (MSAL's own client reads neither).
 */
export class NetworkClient implements INetworkModule {
  private readonly dispatcher: Dispatcher | undefined;

  constructor(private readonly options: NetworkClientOptions) {
    this.dispatcher = options.ca ? new Agent({ connect: { ca: trustedCas(options.ca) } }) : undefined;
  }

  sendGetRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    return this.send<T>(url, "GET", options, timeout);
  }

  sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    return this.send<T>(url, "POST", options);
  }

  /** Fetches a JSON document (the discovery document) with the same timeouts and CAs. */
  async getJson(url: string): Promise<{ status: number; body: unknown }> {
    const response = await this.send<unknown>(url, "GET");
    return { status: response.status, body: response.body };
  }

  async close(): Promise<void> {
    await this.dispatcher?.close();
  }

  private async send<T>(
    url: string,
    method: "GET" | "POST",
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    const signal = AbortSignal.timeout(Math.min(timeout ?? this.options.timeoutMs, this.options.timeoutMs));
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: options?.headers ?? {},
        ...(method === "POST" ? { body: options?.body ?? "" } : {}),
        signal,
        ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
      });
    } catch (error) {
      throw new IdpUnreachableError(`${method} ${new URL(url).origin}: ${describeFetchError(error)}`, {
        cause: error,
      });
    }
    const text = await response.text();
    let body: T;
    try {
      body = (text === "" ? {} : JSON.parse(text)) as T;
    } catch {
      // An HTML error page from a proxy or a load balancer: keep the status, let MSAL report it as a server error.
      body = { error: "invalid_response", error_description: `HTTP ${response.status}, not JSON` } as T;
    }
    const headers: Record<string, string> = {};
    response.headers.forEach((value, key) => {
      headers[key] = value;
    });
    return { headers, body, status: response.status };
  }
}

function describeFetchError(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === "TimeoutError" || error.name === "AbortError") return "timed out";
    const cause = (error as Error & { cause?: unknown }).cause;
    if (cause instanceof Error) return `${error.message} (${cause.message})`;
    return error.message;
  }
  return String(error);
}

/** Giving `ca` replaces Node's trust store, so add back the system roots and NODE_EXTRA_CA_CERTS. */
function trustedCas(extra: string): string[] {
  const cas = [...rootCertificates, extra];
  const nodeExtra = process.env["NODE_EXTRA_CA_CERTS"];
  if (nodeExtra) {
    try {
      cas.push(readFileSync(nodeExtra, "utf8"));
    } catch {
      // Node already warned about an unreadable NODE_EXTRA_CA_CERTS at start-up.
    }
  }
  return cas;
}
