-- wrk script for scripts/load.sh. Arguments (after `--`): MIX COOKIES_FILE [BASE_PATH] [REJECT_EVERY]
--   MIX          token | sessioninfo | rejected | static
--   COOKIES_FILE one `Cookie` header value per line, one line per session (scripts/load/login.mjs)
--   REJECT_EVERY in the `rejected` mix, every REJECT_EVERY-th request of a connection is a POST
--                bff-token with rejected_token=<the token this connection last got> (20: 5 %)
--   static       GET /demo.css with the same headers and session cookie: requests as large as the
--                mixes' that the Worker's code never sees, for scripts/load.sh's control
--
-- Run with as many threads as connections: wrk hands `response` no hint of which request it
-- answers, so with one connection per thread the answer always belongs to the thread's session.
-- wrk keeps only the last of repeated response headers, and a refresh's new session cookie is
-- followed by deletions of the chunk names, so no connection can take its rotated cookie from
-- the response: scripts/load/keeper.mjs does, and rewrites COOKIES_FILE, which every connection
-- re-reads once a second. Until then a connection sends its older copy, which the backend's
-- rotation memory (30 s) answers: the case of several tabs of one browser, which it must handle.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local function load_session()
   local lines = {}
   local file = io.open(cookies_file)
   if not file then return end
   for line in file:lines() do
      if line ~= "" then lines[#lines + 1] = line end
   end
   file:close()
   if #lines == 0 then return end
   local line = lines[id % #lines + 1]
   if line ~= cookie then
      if cookie then cookie_updates = cookie_updates + 1 end
      cookie = line
   end
end

function init(args)
   mix = args[1]
   cookies_file = args[2]
   base = args[3] or ""
   reject_every = tonumber(args[4] or "20")
   sent, non2xx, rejected_sent, cookie_updates = 0, 0, 0, 0
   first_error = ""
   load_session()
   assert(cookie, "no sessions in " .. cookies_file)
   assert(not cookie:find(";"), "sessions must be one cookie each: " .. cookie:sub(1, 60))
   loaded_at = os.time()
   headers = { ["X-CSRF"] = "1", ["Sec-Fetch-Site"] = "same-origin" }
end

function request()
   sent = sent + 1
   if os.time() ~= loaded_at then
      loaded_at = os.time()
      load_session()
   end
   headers["Cookie"] = cookie
   headers["Content-Type"] = nil
   if mix == "sessioninfo" then
      return wrk.format("GET", base .. "/.well-known/bff-sessioninfo", headers)
   end
   if mix == "static" then
      return wrk.format("GET", base .. "/demo.css", headers)
   end
   if mix == "rejected" and token and sent % reject_every == 0 then
      rejected_sent = rejected_sent + 1
      headers["Content-Type"] = "application/x-www-form-urlencoded"
      return wrk.format("POST", base .. "/.well-known/bff-token", headers, "rejected_token=" .. token)
   end
   return wrk.format("GET", base .. "/.well-known/bff-token", headers)
end

function response(status, response_headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if first_error == "" then first_error = status .. " " .. body:sub(1, 200) end
   end
   if status == 200 and (mix == "token" or mix == "rejected") then
      token = body:match('"access_token"%s*:%s*"([^"]+)"') or token
   end
end

function done(summary, latency, requests)
   local non2xx_total, rejected_total, updates_total, first = 0, 0, 0, ""
   for _, thread in ipairs(threads) do
      non2xx_total = non2xx_total + (thread:get("non2xx") or 0)
      rejected_total = rejected_total + (thread:get("rejected_sent") or 0)
      updates_total = updates_total + (thread:get("cookie_updates") or 0)
      if first == "" then first = thread:get("first_error") or "" end
   end
   first = first:gsub("%c", " ")
   local e = summary.errors
   io.write(string.format(
      'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
      '"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d,"non2xx":%d,' ..
      '"rejected_sent":%d,"cookie_updates":%d,"first_error":%q}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.timeout, e.status, non2xx_total,
      rejected_total, updates_total, first))
end
