import { parse, TYPE, type MessageFormatElement } from "@formatjs/icu-messageformat-parser";
import { describe, expect, it } from "vitest";
import { CATALOGUES, LOCALES, type MessageId } from "../../src/i18n/catalogue.js";
import { chooseLocale, translate } from "../../src/i18n/translate.js";
import { codeGroups, urlParts } from "../../src/display/readable.js";

/** The argument names a message uses, at any depth (plural branches included). */
function argumentsOf(elements: MessageFormatElement[], into = new Set<string>()): Set<string> {
  for (const element of elements) {
    if (element.type === TYPE.argument || element.type === TYPE.number || element.type === TYPE.plural)
      into.add(element.value);
    if (element.type === TYPE.plural || element.type === TYPE.select)
      for (const option of Object.values(element.options)) argumentsOf(option.value, into);
  }
  return into;
}

describe("the display's message catalogue", () => {
  const ids = Object.keys(CATALOGUES.en) as MessageId[];

  it.each(LOCALES.filter((l) => l !== "en"))(
    "%s has every message, with the same arguments as English",
    (locale) => {
      expect(Object.keys(CATALOGUES[locale]).sort()).toStrictEqual([...ids].sort());
      for (const id of ids) {
        const expected = [...argumentsOf(parse(CATALOGUES.en[id]))].sort();
        expect({ id, args: [...argumentsOf(parse(CATALOGUES[locale][id]))].sort() }).toStrictEqual({
          id,
          args: expected,
        });
      }
    },
  );

  it("formats plurals by each language's CLDR rules", () => {
    const values = (minutes: number) => ({ code: "ABC DEF", url: "example.com", minutes });
    expect(translate("en", "announceCode", values(1))).toContain("expires in 1 minute.");
    expect(translate("en", "announceCode", values(5))).toContain("expires in 5 minutes.");
    expect(translate("pl", "announceCode", values(2))).toContain("za 2 minuty.");
    expect(translate("pl", "announceCode", values(5))).toContain("za 5 minut.");
    expect(translate("ar", "announceCode", values(2))).toContain("دقيقتين");
    expect(translate("de", "signedInAs", { name: "Dave" })).toBe("Angemeldet als Dave");
  });
});

describe("choosing the language", () => {
  it.each([
    [undefined, "de-AT,de;q=0.9,en;q=0.8", "de"],
    [undefined, "en;q=0.5, fr-CA", "fr"],
    [undefined, "zh-CN,zh;q=0.9", "zh-Hans"],
    [undefined, "zh-TW", "zh-Hant"],
    [undefined, "zh-HK", "zh-Hant"],
    [undefined, "zh-SG", "zh-Hans"],
    // No Catalan: the closest language people there read (CLDR's matching), not English.
    [undefined, "ca", "es"],
    [undefined, "sr, nb", "en"],
    [undefined, "pt-BR", "pt"],
    [undefined, "ar-EG", "ar"],
    [undefined, "ja-JP", "ja"],
    [undefined, "xx, *;q=0.1", "en"],
    [undefined, undefined, "en"],
    ["auto", "nl-BE", "nl"],
    ["it", "de", "it"],
    ["zh-Hans", "de", "zh-Hans"],
    ["not a tag!", "de", "en"],
  ])("configured %s, Accept-Language %s: %s", (configured, accept, expected) => {
    expect(chooseLocale(configured, accept)).toBe(expected);
  });
});

describe("readable codes and addresses", () => {
  it.each([
    ["GTK8ZJ2LA", ["GTK", "8ZJ", "2LA"]],
    ["WDJB-MJHT", ["WDJB", "MJHT"]],
    ["ABCDEFGH", ["ABCD", "EFGH"]],
    ["ABC DEF", ["ABC", "DEF"]],
    ["ABCDEFGHIJ", ["ABCD", "EFGH", "IJ"]],
    ["ABCD", ["ABCD"]],
  ])("groups %s for reading", (code, groups) => {
    expect(codeGroups(code)).toStrictEqual(groups);
  });

  it("drops https://, and cuts only after / and before .", () => {
    expect(urlParts("https://my-tenant.ciamlogin.com/common/oauth2/deviceauth")).toStrictEqual([
      "my-tenant",
      ".ciamlogin",
      ".com/",
      "common/",
      "oauth2/",
      "deviceauth",
    ]);
    expect(urlParts("https://microsoft.com/devicelogin/")).toStrictEqual([
      "microsoft",
      ".com/",
      "devicelogin",
    ]);
    expect(urlParts("http://example.com")).toStrictEqual(["http:/", "/", "example", ".com"]);
  });
});
