import { match } from "@formatjs/intl-localematcher";
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
 * 12.5.4) that we have, by {@link matchLocale} (so `zh-CN` and `zh` find `zh-Hans`, `zh-TW` finds `zh-Hant`,
 * `pt-BR` finds `pt`, `de-AT` finds `de`); English when nothing matches.
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

/**
 * The supported locale a language tag means, if any: CLDR's language matching (the "best fit" of ECMA-402's
 * Intl.LocaleMatcher, from @formatjs/intl-localematcher), so a region or script finds its language (`pt-BR` ->
 * `pt`, `zh-TW` -> `zh-Hant`, `zh-CN` -> `zh-Hans`) and a language people there also read finds that one
 * (`ca` -> `es`, `gsw` -> `de`). `undefined` when nothing is close enough, or the tag is no tag.
 */
export function matchLocale(tag: string): Locale | undefined {
  let found: string;
  try {
    found = match([tag], LOCALES, NO_MATCH, { algorithm: "best fit" });
  } catch {
    return undefined;
  }
  return LOCALES.find((locale) => locale === found);
}

/** What the matcher answers when no supported locale is close: "undetermined", which is none of ours. */
const NO_MATCH = "und";
