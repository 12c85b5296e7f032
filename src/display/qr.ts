import { renderSVG, renderUnicodeCompact } from "uqr";

/**
 * QR codes for the displays. Error correction M survives a glare spot on a TV; a quiet zone of 4 modules is
 * what the standard asks for and what phone cameras need to find the code against a busy background.
 */
const ECC = "M";

/** Black on white SVG, scalable to any screen size. */
export function qrSvg(text: string): string {
  return renderSVG(text, { ecc: ECC, border: 4, pixelSize: 10, whiteColor: "#fff", blackColor: "#000" });
}

/**
 * Two modules per character line with half blocks. Light modules are drawn, dark ones left blank: on the usual
 * dark terminal this reads as dark on light, as a scanner expects.
 */
export function qrText(text: string): string {
  return renderUnicodeCompact(text, { ecc: ECC, border: 2 });
}
