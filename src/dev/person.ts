import { Agent, buildConnector, fetch } from "undici";

export interface PersonOptions {
  ca: string;
  login: string;
  password?: string;
  /**
   * Where the person's browser really connects, as curl's `--connect-to`: `"host:port"` (as in the provider's
   * URLs) to `"host:port"`. For a provider whose URLs carry a name only its own network resolves (a compose
   * service) and that this machine reaches through a published port. TLS still checks the URL's host name.
   */
  connectTo?: Readonly<Record<string, string>>;
}

/** Open verificationUri, enter userCode, confirm, log in as `login`, consent if asked; resolves when the "Sign-in Success" page is reached, rejects with a clear Error otherwise. */
export async function approveSignIn(
  verificationUri: string,
  userCode: string,
  options: PersonOptions,
): Promise<void> {
  await withBrowser(options, async (browser) => {
    const confirm = await reachConfirmation(browser, verificationUri, userCode);
    await confirmAndLogIn(browser, confirm, options);
  });
}

/**
 * The one-scan journey of a QR code: open `verification_uri_complete` (the code is in the URL) and sign in
 * as `login` without typing the code. oidc-provider answers that URL with a page whose script submits a
 * form at once; this submits it as a browser would.
 */
export async function approveByCompleteUri(
  verificationUriComplete: string,
  options: PersonOptions,
): Promise<void> {
  await withBrowser(options, async (browser) => {
    const landing = await browser.open(verificationUriComplete);
    const [autoSubmitted] = forms(landing);
    if (!autoSubmitted || !/document\.forms\[0\]\.submit\(\)/.test(landing.html)) {
      throw new Error(`Expected a page that submits itself, got ${describe(landing)}`);
    }
    const confirm = formById(
      await browser.submit(autoSubmitted, autoSubmitted.fields),
      "op.deviceConfirmForm",
    );
    await confirmAndLogIn(browser, confirm, options);
  });
}

/** Confirm the device, log in, consent if the provider still asks for it; ends on "Sign-in Success". */
async function confirmAndLogIn(browser: Browser, confirm: Form, options: PersonOptions): Promise<void> {
  let page = await browser.submit(confirm, confirm.fields);
  for (let step = 0; step < 3 && title(page) !== "Sign-in Success"; step++) {
    const prompt = forms(page).find((form) => form.fields.prompt);
    if (!prompt) break;
    const credentials = { login: options.login, password: options.password ?? "password" };
    page = await browser.submit(prompt, {
      ...prompt.fields,
      ...(prompt.fields.prompt === "login" && credentials),
    });
  }
  if (title(page) !== "Sign-in Success") throw new Error(`Sign-in did not succeed: ${describe(page)}`);
}

/** Same journey, but abort at the confirm step (`abort=yes`): the device's poll then gets access_denied. */
export async function declineSignIn(
  verificationUri: string,
  userCode: string,
  options: Pick<PersonOptions, "ca" | "connectTo">,
): Promise<void> {
  await withBrowser(options, async (browser) => {
    const confirm = await reachConfirmation(browser, verificationUri, userCode);
    const fields: Record<string, string> = { ...confirm.fields, abort: "yes" };
    delete fields.confirm;
    const page = await browser.submit(confirm, fields);
    if (!/cancel|interrupt/i.test(errorText(page) ?? "")) {
      throw new Error(`Declining was not acknowledged: ${describe(page)}`);
    }
  });
}

interface Page {
  url: string;
  html: string;
}

interface Form {
  id: string | undefined;
  action: string;
  fields: Record<string, string>;
  page: Page;
}

async function reachConfirmation(browser: Browser, verificationUri: string, userCode: string): Promise<Form> {
  const start = await browser.open(verificationUri);
  const input = formById(start, "op.deviceInputForm");
  return formById(
    await browser.submit(input, { ...input.fields, user_code: userCode }),
    "op.deviceConfirmForm",
  );
}

async function withBrowser(
  options: Pick<PersonOptions, "ca" | "connectTo">,
  journey: (browser: Browser) => Promise<void>,
): Promise<void> {
  const connect = buildConnector({ ca: options.ca });
  const connectTo = options.connectTo ?? {};
  const dispatcher = new Agent({
    connect: (target, callback) => {
      const to = connectTo[`${target.hostname}:${target.port}`];
      if (!to) return connect(target, callback);
      // `host` (the URL's host:port) stays, so the TLS server name and the Host header stay the URL's.
      const { hostname, port } = new URL(`https://${to}`);
      return connect({ ...target, hostname, port }, callback);
    },
  });
  try {
    await journey(new Browser(dispatcher));
  } finally {
    await dispatcher.close();
  }
}

/** Just enough browser for the provider's pages: a cookie jar and manually followed redirects. */
class Browser {
  private readonly cookies = new Map<string, string>();

  constructor(private readonly dispatcher: Agent) {}

  open(url: string): Promise<Page> {
    return this.request(url);
  }

  submit(form: Form, fields: Record<string, string>): Promise<Page> {
    return this.request(new URL(form.action, form.page.url).href, new URLSearchParams(fields).toString());
  }

  private async request(url: string, body?: string): Promise<Page> {
    for (let hop = 0; hop < 10; hop++) {
      const response = await fetch(url, {
        method: body === undefined ? "GET" : "POST",
        body,
        redirect: "manual",
        dispatcher: this.dispatcher,
        headers: {
          cookie: [...this.cookies].map(([name, value]) => `${name}=${value}`).join("; "),
          ...(body !== undefined && { "content-type": "application/x-www-form-urlencoded" }),
        },
      });
      this.remember(response.headers.getSetCookie());
      const location = response.headers.get("location");
      const html = await response.text();
      if (response.status >= 300 && response.status < 400 && location) {
        url = new URL(location, url).href;
        body = undefined;
        continue;
      }
      const page = { url, html };
      if (!response.ok) throw new Error(`${url} answered ${response.status}: ${describe(page)}`);
      return page;
    }
    throw new Error(`Too many redirects, last at ${url}`);
  }

  // Paths and expiry dates are ignored: one short journey against one host does not need them.
  private remember(setCookies: string[]): void {
    for (const setCookie of setCookies) {
      const [pair = ""] = setCookie.split(";");
      const at = pair.indexOf("=");
      const [name, value] = [pair.slice(0, at).trim(), pair.slice(at + 1).trim()];
      if (value && !/expires=Thu, 01 Jan 1970/i.test(setCookie)) this.cookies.set(name, value);
      else this.cookies.delete(name);
    }
  }
}

function forms(page: Page): Form[] {
  return [...page.html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)].map(([, tag = "", inner = ""]) => {
    const fields: Record<string, string> = {};
    for (const [input] of inner.matchAll(/<input\b[^>]*>/gi)) {
      const { type, name, value } = attributes(input);
      if (type === "hidden" && name) fields[name] = value ?? "";
    }
    const { id, action = page.url } = attributes(tag);
    return { id, action, fields, page };
  });
}

function formById(page: Page, id: string): Form {
  const form = forms(page).find((candidate) => candidate.id === id);
  if (!form) throw new Error(`Expected form ${id}, got ${describe(page)}`);
  return form;
}

function attributes(tag: string): Record<string, string | undefined> {
  return Object.fromEntries(
    [...tag.matchAll(/([\w.:-]+)="([^"]*)"/g)].map(([, name = "", value = ""]) => [
      name.toLowerCase(),
      decodeEntities(value),
    ]),
  );
}

const title = (page: Page) =>
  decodeEntities(/<title>([\s\S]*?)<\/title>/i.exec(page.html)?.[1]?.trim() ?? "");

const errorText = (page: Page) => {
  const match = /<p class="(?:error|red)">([\s\S]*?)<\/p>/i.exec(page.html)?.[1];
  return match === undefined ? undefined : decodeEntities(match.replace(/<[^>]+>/g, "").trim());
};

const describe = (page: Page) => {
  const error = errorText(page);
  return `page "${title(page)}" at ${page.url}${error ? ` saying "${error}"` : ""}`;
};

function decodeEntities(text: string): string {
  const named: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
  return text.replace(/&(#\d+|#x[\da-f]+|\w+);/gi, (entity, code: string) =>
    code.startsWith("#x") || code.startsWith("#X")
      ? String.fromCodePoint(parseInt(code.slice(2), 16))
      : code.startsWith("#")
        ? String.fromCodePoint(Number(code.slice(1)))
        : (named[code.toLowerCase()] ?? entity),
  );
}
