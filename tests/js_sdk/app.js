// An app that uses the Optimizely JavaScript SDK the way Optimizely's docs show it: an SDK key,
// the default polling datafile manager, the default batch event processor and dispatcher. No URL,
// no dispatcher, nothing that knows about logx-mock: tests/test_unmodified_apps.py runs it where
// cdn.optimizely.com and logx.optimizely.com resolve to logx-mock (argv[2]: the SDK key).
"use strict";
const sdk = require("@optimizely/optimizely-sdk");

const client = sdk.createInstance({
  projectConfigManager: sdk.createPollingProjectConfigManager({ sdkKey: process.argv[2] }),
  eventProcessor: sdk.createBatchEventProcessor(),
});

client
  .onReady({ timeout: 10000 })
  .then(() => {
    const user = client.createUserContext("js-app-user", { plan: "pro" });
    const decision = user.decide("checkout_flow");
    user.trackEvent("purchase", { revenue: 4200 });
    console.log(JSON.stringify({ flag: decision.flagKey, variation: decision.variationKey }));
    // The batch processor queues each event a microtask later; close() in this same tick would
    // find the queue empty, and the events would leave only when the 30 s flush timer fires.
    return new Promise((resolve) => setTimeout(resolve, 100));
  })
  .then(() => client.close())
  .catch((error) => {
    console.error(`app failed: ${error}`);
    process.exit(1);
  });
