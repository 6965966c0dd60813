-- wrk script: POST pre-signed Twilio webhooks, one MessageSid each.
--
--   wrk ... -s webhooks.lua URL -- REQUESTS_FILE [NTHREADS [EXPECT]]
--
-- REQUESTS_FILE comes from gen_requests.py: a TEMPLATE line, then one
-- "MessageSid FromDigits Signature" line per request. Lines are streamed, not
-- loaded, so memory stays small. With several wrk threads (pass NTHREADS),
-- thread k of n takes lines k, k+n, ... so no MessageSid is sent twice. When
-- the file runs out it starts over; every such request is counted as "reused" (a replay for
-- twhookd, which would flatter it), and done() reports it.
--
-- EXPECT (default "token=", the reset link) must appear in every 200 answer;
-- one without it counts as "nolink". The PIN run passes "<Response/>".
--
-- done() prints one machine-readable line for bench/run:
--   BENCH requests=... duration_us=... p50_us=... p99_us=... non200=... nolink=...
--         statuses=... reused=... unique=... sent=... err_connect=... err_read=...
--         err_write=... err_timeout=... err_status=...

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   table.insert(threads, thread)
   counter = counter + 1
end

-- Per-thread state (each thread has its own Lua state).
local file, path, pieces, head
local stride, skip = 1, 0
local expect = "token="
non200 = 0
nolink = 0
reused = 0
sent = 0
status_seen = ""
local statuses = {}

local function open_file()
   file = assert(io.open(path, "r"))
   local first = file:read("*l")
   assert(first and first:sub(1, 9) == "TEMPLATE ", "bad requests file: " .. path)
   return first:sub(10)
end

local function split_template(t)
   -- literal, marker, literal, marker, ..., literal (markers: 1 sid, 2 from)
   local out, pos = {}, 1
   while true do
      local s1, e1 = t:find("__SID__", pos, true)
      local s2, e2 = t:find("__FROM__", pos, true)
      local s, e, m
      if s1 and (not s2 or s1 < s2) then s, e, m = s1, e1, 1
      elseif s2 then s, e, m = s2, e2, 2
      else break end
      table.insert(out, t:sub(pos, s - 1))
      table.insert(out, m)
      pos = e + 1
   end
   table.insert(out, t:sub(pos))
   return out
end

function init(args)
   path = args[1]
   assert(path, "usage: wrk ... -s webhooks.lua URL -- REQUESTS_FILE [NTHREADS [EXPECT]]")
   stride = tonumber(args[2]) or 1
   if args[3] and args[3] ~= "" then expect = args[3] end
   skip = tonumber(tid) or 0 -- set by setup() before init() runs
   pieces = split_template(open_file())
   local host = wrk.host .. ":" .. tostring(wrk.port)
   head = "POST " .. wrk.path .. " HTTP/1.1\r\nHost: " .. host ..
      "\r\nContent-Type: application/x-www-form-urlencoded\r\n" ..
      "X-Twilio-Signature: "
   -- position this thread on its first line
   for _ = 1, skip do file:read("*l") end
end

local function next_line()
   local line = file:read("*l")
   if not line then
      file:close()
      open_file()
      for _ = 1, skip do file:read("*l") end
      line = file:read("*l")
      reused = reused + 1
   elseif reused > 0 then
      reused = reused + 1
   end
   for _ = 2, stride do file:read("*l") end
   return line
end

local parts = {}

function request()
   local line = next_line()
   local sid, from, sig = line:match("^(%S+) (%S+) (%S+)$")
   for i = 1, #pieces do
      local p = pieces[i]
      if p == 1 then parts[i] = sid
      elseif p == 2 then parts[i] = from
      else parts[i] = p end
   end
   local body = table.concat(parts, "", 1, #pieces)
   sent = sent + 1
   return head .. sig .. "\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body
end

function response(status, headers, body)
   if status == 200 then
      -- every sender is registered: a 200 without the expected answer (a
      -- reset link) means the server skipped the work (rate limited, ...)
      if not (body and body:find(expect, 1, true)) then nolink = nolink + 1 end
   else
      non200 = non200 + 1
      local k = tostring(status)
      if not statuses[k] then
         statuses[k] = true
         status_seen = status_seen .. k .. ","
      end
   end
end

function done(summary, latency, requests)
   local n200, nnolink, nreused, nsent, seen = 0, 0, 0, 0, ""
   for _, t in ipairs(threads) do
      n200 = n200 + (tonumber(t:get("non200")) or 0)
      nnolink = nnolink + (tonumber(t:get("nolink")) or 0)
      nreused = nreused + (tonumber(t:get("reused")) or 0)
      nsent = nsent + (tonumber(t:get("sent")) or 0)
      seen = seen .. (t:get("status_seen") or "")
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d non200=%d " ..
      "nolink=%d statuses=%s reused=%d unique=%d sent=%d err_connect=%d err_read=%d " ..
      "err_write=%d err_timeout=%d err_status=%d\n",
      summary.requests, summary.duration, latency:percentile(50),
      latency:percentile(99), latency.max, n200, nnolink, seen ~= "" and seen or "-",
      nreused, nsent - nreused, nsent, e.connect, e.read, e.write, e.timeout,
      e.status))
end
