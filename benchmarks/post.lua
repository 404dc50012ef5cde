-- wrk script: POST the body in $BODY_FILE; "__UUID__" in it becomes a fresh uuid per event,
-- so the mock sees new events (not duplicates), as it would from a real SDK.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("STRICT") == "1" then wrk.headers["X-Optimizely-Strict"] = "true" end
local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
local template = file:read("*a")
file:close()
local counter = 0
local started = os.time()
local unique = template:find("__UUID__", 1, true) ~= nil

request = function()
  if not unique then return wrk.format(nil, nil, nil, template) end
  local body = template:gsub("__UUID__", function()
    counter = counter + 1
    return string.format("bench-%d-%012d", started, counter)
  end)
  return wrk.format(nil, nil, nil, body)
end
