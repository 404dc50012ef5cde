// The real Optimizely JavaScript SDK, driven through a fixed set of calls for a datafile
// (argv[2]); every batch it sends is printed as one JSON line instead of being posted.
// Run by tests/test_js_sdk.py.
"use strict";
const fs = require("fs");
const sdk = require("@optimizely/optimizely-sdk");

const datafile = fs.readFileSync(process.argv[2], "utf8");
const sent = [];
const keep = {
  dispatchEvent: async (event) => {
    sent.push(event.params);
    return { statusCode: 204 };
  },
};
const client = sdk.createInstance({
  projectConfigManager: sdk.createStaticProjectConfigManager({ datafile }),
  eventProcessor: sdk.createForwardingEventProcessor(keep),
});

async function drive() {
  const user = client.createUserContext("js-user-1", { plan: "pro", città: "Zürich" });
  user.decide("checkout_flow"); // an A/B rule of a flag
  user.decide("banner"); // the "everyone else" rollout rule
  user.decide("recs"); // no decision
  user.trackEvent("purchase", { revenue: 4200, value: 3.5 });
  const forced = client.createUserContext("js-user-2", { plan: "free" });
  forced.setForcedDecision({ flagKey: "checkout_flow" }, { variationKey: "treatment" });
  forced.decide("checkout_flow");
  client.activate("checkout_ab", "js-user-3", { plan: "pro" });
  client.track("signup", "js-user-3");
  client.track("kauf_€_ünï", "js-user-3", {}, { revenue: 100 });
}

client.onReady().then(async () => {
  await drive();
  await new Promise((resolve) => setTimeout(resolve, 100)); // dispatches are async
  for (const params of sent) console.log(JSON.stringify(params));
  client.close();
});
