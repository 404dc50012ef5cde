-- wrk script: POST the body in $BODY_FILE; "__UUID__" in it becomes a fresh random uuid
-- (version 4, as every Optimizely SDK makes one per event) per event, so the mock sees new
-- events (not duplicates) spread over its uuid index as a real SDK's are. (Sequential ids
-- would put every insert at the index's right edge: session 8 measured the SQLite journal's
-- writer at half the cost per event with them, a figure no SDK's traffic would give.)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("STRICT") == "1" then wrk.headers["X-Optimizely-Strict"] = "true" end
local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
local template = file:read("*a")
file:close()
local unique = template:find("__UUID__", 1, true) ~= nil
local random = math.random
math.randomseed(os.time())

local function uuid4()
  return string.format(
    "%08x-%04x-4%03x-%04x-%06x%06x",
    random(0, 0x7fffffff) * 2 + random(0, 1), random(0, 0xffff), random(0, 0xfff),
    random(0x8000, 0xbfff), random(0, 0xffffff), random(0, 0xffffff)
  )
end

request = function()
  if not unique then return wrk.format(nil, nil, nil, template) end
  return wrk.format(nil, nil, nil, template:gsub("__UUID__", uuid4))
end
