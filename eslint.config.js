// @ts-check
import eslint from "@eslint/js";
import tseslint from "typescript-eslint";

/**
 * The parts map, enforced: each part of src/ and what it must not import. `mqtt` is imported only under src/mqtt/,
 * `@azure/msal-node` only under src/auth/, and src/dev/ (the demo's broker, provider and person) only by the CLI.
 * The rules below are a test too: test/unit/boundaries.test.ts lints a forbidden import and expects it refused.
 */
const PART = (name) => `(^|/)(\\.{1,2}/)+${name}(/|\\.js$)`;
const MQTT_PACKAGE = {
  regex: "^mqtt(/|$)",
  message: "Only src/mqtt/ talks to the broker: import the gateway's types instead.",
};
const MSAL_PACKAGE = { regex: "^@azure/msal-", message: "Only src/auth/ knows MSAL." };
const DEV = { regex: PART("dev"), message: "src/dev/ (the demo's parts) is for the CLI only." };
const forbid = (parts, message) => ({ regex: `(^|/)(\\.{1,2}/)+(${parts.join("|")})(/|\\.js$)`, message });
const ABOVE_LEAVES = [
  "agent",
  "sign-in",
  "auth",
  "mqtt",
  "reporters",
  "display",
  "fleet",
  "cli",
  "requests",
  "dev",
  "launch",
  "main",
  "index",
];
/** @type {Array<[string, Array<{regex: string, message: string}>]>} */
const RULES = [
  [
    "src/auth/**",
    [
      MQTT_PACKAGE,
      DEV,
      forbid(
        ["mqtt", "reporters", "display", "fleet", "cli", "agent", "requests", "sign-in"],
        "auth knows no broker, no reporter and no display: it gets and renews tokens.",
      ),
    ],
  ],
  [
    "src/sign-in/**",
    [
      MQTT_PACKAGE,
      MSAL_PACKAGE,
      DEV,
      forbid(
        ["mqtt", "reporters", "display", "fleet", "cli", "agent", "requests"],
        "The sign-in loop drives auth and emits the agent's events; it knows no broker and no consumer.",
      ),
    ],
  ],
  [
    "src/mqtt/**",
    [
      MSAL_PACKAGE,
      DEV,
      forbid(
        ["auth", "reporters", "display", "fleet", "cli", "agent"],
        "mqtt knows no identity and no consumer: it moves messages.",
      ),
    ],
  ],
  [
    "src/reporters/**",
    [
      MQTT_PACKAGE,
      MSAL_PACKAGE,
      DEV,
      forbid(
        ["auth", "display", "fleet", "cli", "agent"],
        "A reporter consumes the agent's events; it knows neither MSAL nor the displays.",
      ),
    ],
  ],
  [
    "src/display/**",
    [
      MQTT_PACKAGE,
      MSAL_PACKAGE,
      DEV,
      forbid(
        ["agent", "auth", "reporters", "fleet", "cli", "requests", "control"],
        "Displays reach the agent only through MQTT.",
      ),
    ],
  ],
  [
    "src/fleet/**",
    [
      MQTT_PACKAGE,
      MSAL_PACKAGE,
      DEV,
      forbid(
        ["agent", "auth", "reporters", "display", "cli", "requests", "control"],
        "The fleet view reaches agents only through MQTT.",
      ),
    ],
  ],
  [
    "src/{util,storage,http,crypto,i18n,config,requests}/**",
    [
      MQTT_PACKAGE,
      MSAL_PACKAGE,
      DEV,
      forbid(
        ABOVE_LEAVES.filter((p) => p !== "requests"),
        "Shared plumbing imports no part above it.",
      ),
    ],
  ],
  [
    "src/tokens/**",
    [
      MQTT_PACKAGE,
      MSAL_PACKAGE,
      DEV,
      forbid(
        ["mqtt", "reporters", "display", "fleet", "cli", "agent"],
        "The token service knows tokens, not the broker or the displays.",
      ),
    ],
  ],
  ["src/{agent,events,control,errors,index}.ts", [MQTT_PACKAGE, MSAL_PACKAGE, DEV]],
];
function boundaries() {
  return RULES.map(([files, patterns]) => ({
    files: [files],
    rules: { "no-restricted-imports": ["error", { patterns }] },
  }));
}

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "coverage/", "test-artifacts/", "bench/results/"] },
  eslint.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A promise nobody awaits is an error nobody sees: the agent must never lose one.
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
    },
  },
  ...boundaries(),
  {
    // vitest's asymmetric matchers (expect.stringMatching, expect.objectContaining) are typed `any`.
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/no-unsafe-assignment": "off" },
  },
  {
    // Plain JavaScript outside the TypeScript project: the bench's baseline is the MSAL sample as users copy it;
    // the slim undici entry imports undici's untyped internals.
    files: [
      "eslint.config.js",
      "bench/baseline.mjs",
      "scripts/undici-slim.mjs",
      "test/helpers/stepped-clock.mjs",
    ],
    ...tseslint.configs.disableTypeChecked,
  },
);
