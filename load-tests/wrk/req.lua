-- wrk -t1 -c64 -d10s --timeout 5s -s wrk/req.lua BASE_URL -- MODE ARGS...
--   get  GETLIST            GET BASE/ocsp/<suffix>, suffixes from GETLIST, round-robin
--   post POSTLIST           POST BASE/ocsp with the DER files listed in POSTLIST, round-robin
--   paths PATHLIST          GET BASE<path> for each URL path in PATHLIST (CRL / AIA), round-robin
--   mix GETLIST POSTLIST CRLLIST AIALIST   70/20/5/5 like k6/mix.js
-- done() prints one "WRKJSON {...}" line for lib/report.py.
-- Used as a cross-check of k6 (wrk needs far less CPU per request, so on 2 cores it is less
-- often the bottleneck) and as the fallback when k6 is missing. Fixed request order per thread.

local function read_lines(path)
  local t = {}
  for l in io.lines(path) do if #l > 0 then t[#t + 1] = l end end
  return t
end

local function slurp(path)
  local f = assert(io.open(path, "rb")); local b = f:read("*a"); f:close(); return b
end

local gets, posts, crls, aias, mode = {}, {}, {}, {}, "get"
local pool, i = {}, 0

function init(args)
  mode = args[1] or "get"
  local base = wrk.path:gsub("/$", "")
  local ctype = { ["Content-Type"] = "application/ocsp-request" }
  if mode == "get" or mode == "mix" then
    for _, s in ipairs(read_lines(args[2])) do gets[#gets + 1] = wrk.format("GET", base .. "/ocsp/" .. s) end
  end
  if mode == "post" or mode == "mix" then
    for _, p in ipairs(read_lines(mode == "post" and args[2] or args[3])) do
      posts[#posts + 1] = wrk.format("POST", base .. "/ocsp", ctype, slurp(p))
    end
  end
  if mode == "paths" then
    for _, p in ipairs(read_lines(args[2])) do crls[#crls + 1] = wrk.format("GET", base .. p) end
  end
  if mode == "mix" then
    for _, p in ipairs(read_lines(args[4])) do crls[#crls + 1] = wrk.format("GET", base .. p) end
    for _, p in ipairs(read_lines(args[5])) do aias[#aias + 1] = wrk.format("GET", base .. p) end
    -- a shuffled pool of 2000 requests with the 70/20/5/5 weights
    math.randomseed(os.time() + #gets)
    for k = 1, 2000 do
      local r = math.random(100)
      local src = r <= 70 and gets or r <= 90 and posts or r <= 95 and crls or aias
      pool[k] = src[math.random(#src)]
    end
  else
    pool = (mode == "get" and gets) or (mode == "post" and posts) or crls
  end
  i = math.random(#pool)
end

-- Fixed-rate mode (WRK_DELAY_MS set): each connection waits that long before its next request,
-- so N connections send ~N*1000/(delay + latency) req/s. run.sh picks N for half of the peak:
-- an approximately open load that wrk (unlike k6) can generate at server-bound rates.
-- The pause is drawn uniformly from 1 .. 2*WRK_DELAY_MS-1 (mean WRK_DELAY_MS): with a fixed pause
-- all connections stay in phase and arrive in bursts, which would queue and inflate p99.
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "")
if delay_ms then
  function delay() return math.random(1, 2 * delay_ms - 1) end
end

function request()
  i = i % #pool + 1
  return pool[i]
end

function done(s, lat, _)
  local e = s.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_timeout":%d,"non2xx3xx":%d,"p50_us":%d,"p90_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d}\n',
    s.requests, s.duration, s.bytes, e.connect, e.read, e.write, e.timeout, e.status,
    lat:percentile(50), lat:percentile(90), lat:percentile(95), lat:percentile(99), lat.max))
end
