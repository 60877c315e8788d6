package presenceredis

import "github.com/redis/go-redis/v9"

// The scripts make each change and its announcement one atomic step: Redis
// runs a script alone, so the order of PUBLISHes on the channel is the order
// the changes were applied, the same for every subscriber (the
// presence.Store contract for Watch). Every script takes the same keys:
//
//	KEYS[1] the user's hash (field: device, value: encodeValue)
//	KEYS[2] the device's lease (value: owner, with a TTL)
//	KEYS[3] the set of reachable "user/device" members (for the sweep)
//	KEYS[4] the event channel
//
// This needs every key on one Redis node: a single server or a
// Sentinel-managed primary, not Redis Cluster.

// putScript stores an entry. ARGV: device, value, member, event, reachable
// ("1"/"0"), owner, lease TTL in ms. A reachable entry takes the lease
// (last login wins); an offline one drops it.
var putScript = redis.NewScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[5] == '1' then
  redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[7])
  redis.call('SADD', KEYS[3], ARGV[3])
else
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[3], ARGV[3])
end
redis.call('PUBLISH', KEYS[4], ARGV[4])
return 1
`)

// deleteScript takes a device offline. ARGV: device, offline value,
// member, event, owner. Returns 1 when it did, 0 when the device is unknown
// or already offline, 2 when a live lease of another owner holds it (the
// device logged in to another access server since: that server decides).
var deleteScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur or string.sub(cur, 1, 1) == '1' then
  return 0
end
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[5] then
  return 2
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[3])
redis.call('PUBLISH', KEYS[4], ARGV[4])
return 1
`)

// reapScript takes a device offline whose lease has expired (its access
// server stopped refreshing it: crashed, or cut off from Redis). ARGV:
// device, offline value, member, event. Returns 1 when it did. Every
// instance may run it for the same expiry; only the first changes anything.
var reapScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur or string.sub(cur, 1, 1) == '1' then
  redis.call('SREM', KEYS[3], ARGV[3])
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SREM', KEYS[3], ARGV[3])
redis.call('PUBLISH', KEYS[4], ARGV[4])
return 1
`)

// refreshScript extends a lease this owner holds. ARGV: owner, TTL in ms.
// Returns 1 when extended, 0 when the lease is gone (expired, or Redis lost
// its data), 2 when another owner holds it.
var refreshScript = redis.NewScript(`
local owner = redis.call('GET', KEYS[2])
if not owner then
  return 0
end
if owner ~= ARGV[1] then
  return 2
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
`)
