// What the agent's bundle gets for `import ... from "undici"` (scripts/bundle.ts aliases it): the dispatchers and
// the request API the agent uses, without undici's fetch, WebSocket, cache and mocks. Loading undici's index
// loads all of those, and its fetch touches the global File and Headers, which loads Node's own copy of undici
// too: ~500 KB of code to compile before the first code reaches the display. The type declarations stay
// undici's; esbuild fails the bundle if the agent ever imports a name that is not exported here.
import Agent from "undici/lib/dispatcher/agent.js";
import Dispatcher from "undici/lib/dispatcher/dispatcher.js";
import EnvHttpProxyAgent from "undici/lib/dispatcher/env-http-proxy-agent.js";
import api from "undici/lib/api/index.js";

// Exactly what undici's index does: every dispatcher gets the whole API, not only the `request()` the agent
// calls. Dispatchers call these on each other: the proxy agent tunnels with `connect()`, so attaching only
// `request` broke every HTTPS proxy in the shipped bundle. scripts/bundle.ts checks after each build that this
// file leaves Dispatcher.prototype as undici's index does (verifySlimUndici).
Object.assign(Dispatcher.prototype, api);

export { Agent, Dispatcher, EnvHttpProxyAgent };
