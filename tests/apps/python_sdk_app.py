"""An app that uses the Optimizely Python SDK the way Optimizely's docs show it: an SDK key, the
default datafile polling, the default batch event processor and dispatcher. No URL, no
dispatcher, nothing that knows about logx-mock: tests/test_unmodified_apps.py runs it with
HTTPS_PROXY and REQUESTS_CA_BUNDLE pointing at logx-mock (argv[1]: the SDK key)."""

import json
import sys

from optimizely import optimizely

client = optimizely.Optimizely(sdk_key=sys.argv[1])
user = client.create_user_context("py-app-user", {"plan": "pro"})
decision = user.decide("checkout_flow")
user.track_event("purchase", {"revenue": 4200})
client.close()  # flushes the batch of events
print(json.dumps({"flag": decision.flag_key, "variation": decision.variation_key}))
