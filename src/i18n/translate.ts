import { IntlMessageFormat } from "intl-messageformat";
import { CATALOGUES, LOCALES, type Locale, type MessageId } from "./catalogue.js";

export type MessageValues = Readonly<Record<string, string | number>>;

const compiled = new Map<string, IntlMessageFormat>();

/**
 * One message in one language, formatted by intl-messageformat (ICU MessageFormat with the CLDR plural rules
 * that `Intl.PluralRules` carries). Each message is parsed once and kept. A message that does not format (a
 * translation with a broken placeholder) falls back to English rather than leaving the screen blank.
 */
export function translate(locale: Locale, id: MessageId, values: MessageValues = {}): string {
  try {
    return format(locale, id, values);
  } catch {
    return format("en", id, values);
  }
}

function format(locale: Locale, id: MessageId, values: MessageValues): string {
  const key = `${locale}\u0000${id}`;
  let message = compiled.get(key);
  if (!message) {
    message = new IntlMessageFormat(CATALOGUES[locale][id], locale);
    compiled.set(key, message);
  }
  return String(message.format(values));
}

/**
 * The language to show: the configured one, or else the best of the browser's `Accept-Language` (RFC 9110
 * 12.5.4) that we have, by RFC 4647 lookup on the likely subtags (so `zh-CN` and `zh` find `zh-Hans`, `pt-BR`
 * finds `pt`, `de-AT` finds `de`); English when nothing matches.
 * @param configured `DISPLAY_LANGUAGE` or a page's `?lang=`; `auto` or undefined to use `acceptLanguage`.
 */
export function chooseLocale(configured: string | undefined, acceptLanguage: string | undefined): Locale {
  if (configured && configured !== "auto") return matchLocale(configured) ?? "en";
  const ranked = (acceptLanguage ?? "")
    .split(",")
    .slice(0, 32)
    .map((part, index) => {
      const [tag = "", ...params] = part.trim().split(";");
      const q = params.map((p) => /^\s*q=([0-9.]+)\s*$/.exec(p)?.[1]).find(Boolean);
      return { tag: tag.trim(), q: q === undefined ? 1 : Number(q), index };
    })
    .filter((entry) => entry.tag !== "" && entry.tag !== "*" && entry.q > 0)
    .sort((a, b) => b.q - a.q || a.index - b.index);
  for (const { tag } of ranked) {
    const found = matchLocale(tag);
    if (found) return found;
  }
  return "en";
}

/** The supported locale a language tag means, if any. */
export function matchLocale(tag: string): Locale | undefined {
  let locale: Intl.Locale;
  try {
    locale = new Intl.Locale(tag).maximize();
  } catch {
    return undefined;
  }
  const exact = LOCALES.find((candidate) => candidate.toLowerCase() === tag.toLowerCase());
  if (exact) return exact;
  const script = `${locale.language}-${locale.script ?? ""}`;
  return (
    LOCALES.find((candidate) => candidate === script) ??
    // A supported language with a script of its own (zh-Hans) is not the same language in another (zh-Hant).
    LOCALES.find(
      (candidate) => candidate === locale.language && !LOCALES.some((c) => c.startsWith(`${candidate}-`)),
    )
  );
}
