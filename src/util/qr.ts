import { renderSVG, renderUnicodeCompact } from "uqr";
import { qrTarget } from "./bounded.js";

/**
 * QR codes for the displays. Error correction M survives a glare spot on a TV; a quiet zone of 4 modules is
 * what the standard asks for and what phone cameras need to find the code against a busy background.
 */
const ECC = "M";

/**
 * What a prompt's QR code holds: `verificationUriComplete` (no typing on the phone) when it may have one, else
 * `verificationUri`; `undefined` when neither is an `https` URL that fits ({@link qrTarget}), and the display
 * shows the address as text only.
 */
export function promptQrUrl(prompt: {
  readonly verificationUri: string;
  readonly verificationUriComplete?: string | undefined;
}): string | undefined {
  const complete = prompt.verificationUriComplete;
  return (complete === undefined ? undefined : qrTarget(complete)) ?? qrTarget(prompt.verificationUri);
}

/** Black on white SVG, scalable to any screen size; `undefined` when the text may not or cannot be a QR code. */
export function qrSvg(text: string): string | undefined {
  return render(text, () =>
    renderSVG(text, { ecc: ECC, border: 4, pixelSize: 10, whiteColor: "#fff", blackColor: "#000" }),
  );
}

/**
 * Two modules per character line with half blocks. Light modules are drawn, dark ones left blank: on the usual
 * dark terminal this reads as dark on light, as a scanner expects. `undefined` as for {@link qrSvg}.
 */
export function qrText(text: string): string | undefined {
  return render(text, () => renderUnicodeCompact(text, { ecc: ECC, border: 2 }));
}

function render(text: string, draw: () => string): string | undefined {
  if (qrTarget(text) === undefined) return undefined;
  try {
    return draw();
  } catch {
    // The encoder's own limit (RangeError: Data too long) is far above ours; a display never dies of a QR code.
    return undefined;
  }
}
