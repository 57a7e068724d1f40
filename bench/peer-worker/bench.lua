-- wrk script of scripts/bench-worker.sh. Arguments (after `--`): PATH COOKIE_FILE
-- Every connection sends the same browser-like request: the session cookie (the file's one line),
-- X-CSRF and Sec-Fetch-Site, as the JS client does.

function init(args)
   local file = assert(io.open(args[2]))
   local cookie = file:read("*l")
   file:close()
   assert(cookie and cookie ~= "", "no cookie in " .. args[2])
   non2xx = 0
   req = wrk.format("GET", args[1], {
      ["X-CSRF"] = "1",
      ["Sec-Fetch-Site"] = "same-origin",
      ["Cookie"] = cookie,
   })
end

function request()
   return req
end

function response(status, headers, body)
   if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
   local bad = 0
   for _, t in ipairs(threads) do bad = bad + (t:get("non2xx") or 0) end
   local e = summary.errors
   io.write(string.format(
      'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"socket_errors":%d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), bad,
      e.connect + e.read + e.write + e.timeout))
end
